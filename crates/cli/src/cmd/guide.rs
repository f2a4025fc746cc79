//! `homestick guide`: the first-start guide of a customer's employees.

use crate::cli::GuideArgs;
use crate::output::out;
use crate::{load_profile, usage, Failure};

pub(crate) fn guide(a: &GuideArgs) -> Result<(), Failure> {
    let p = load_profile(&a.profile)?;
    let html = homestick_profile::guide::guide_html(&p.customer);
    homestick_image::files::write_atomic(&a.out, html.as_bytes())
        .map_err(|e| usage(format!("--out: {}: {e}", a.out.display())))?;
    out!(
        "wrote the first-start guide for {} to {}",
        p.customer.name,
        a.out.display()
    );
    Ok(())
}
