//! The label sheet of a run: one label per stick written, naming the user it went to, to print
//! and stick on; every value HTML-escaped.

use super::*;

use homestick_formats::html::escape as html_escape;

/// A printable page: one label per good stick of this run (user, serial, the hotline), new
/// file or replaced whole.
pub(crate) fn write_labels(path: &Path, run: &Run) -> std::io::Result<()> {
    let (customer, hotline) = match &run.source {
        Source::Set { set, .. } => (
            set.index.customer.name.clone(),
            // No hotline in the set: the label leaves it out.
            set.index.hotline.clone().unwrap_or_default(),
        ),
        Source::Image(i) => (i.manifest.customer.name.clone(), String::new()),
    };
    let mut html = String::from(
        "<!DOCTYPE html>\n<html lang=\"de\"><head><meta charset=\"utf-8\"><title>homestick labels</title>\n\
         <style>body{font-family:sans-serif} .l{display:inline-block;width:8cm;height:3.5cm;border:1px dashed #999;\
         margin:2mm;padding:3mm;box-sizing:border-box;vertical-align:top} .n{font-size:14pt;font-weight:bold} .g{font-size:8pt}\
         @media print{.l{page-break-inside:avoid}}</style></head><body>\n",
    );
    for (user, serial) in &run.labels {
        html.push_str(&format!(
            "<div class=\"l\"><div class=\"n\">{}</div><div>{}</div><div>Stick {}</div>\
             <div>Hilfe / Help: {}</div>\
             <div class=\"g\">Erster Start / First start: <a href=\"guide.html\">guide.html</a></div></div>\n",
            html_escape(user),
            html_escape(&customer),
            html_escape(serial),
            html_escape(&hotline)
        ));
    }
    html.push_str("</body></html>\n");
    homestick_image::files::write_atomic(path, html.as_bytes())
}
