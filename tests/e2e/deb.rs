//! The .deb for stations and signing machines, installed with dpkg into a fresh minimal Debian
//! root (mmdebstrap, made once per test run by `cargo xtask test` and unpacked here), and used
//! there as a technician would: build the demo customer's image with the installed boot
//! verifier, verify it, read a man page, complete a subcommand in bash.

use std::fs;
use std::path::Path;

use crate::common::*;
use homestick_testkit::env::demo_base;

/// Run `script` with bash inside the root `root` (chroot), HOME=/root.
fn in_root(root: &Path, script: &str) -> Run {
    tool(
        "chroot",
        &[
            root.display().to_string().as_str(),
            "/usr/bin/env",
            "-i",
            "HOME=/root",
            "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG=C.UTF-8",
            "/bin/bash",
            "-euo",
            "pipefail",
            "-c",
            script,
        ],
    )
}

#[test]
fn the_deb_installs_into_a_fresh_debian_and_builds_verifies_shows_man_pages_and_completes() {
    let deb = homestick_testkit::env::deb();
    let tarball = homestick_testkit::env::station_root();
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    fs::create_dir(&root).unwrap();
    let r = tool(
        "tar",
        &[
            "-xf",
            &tarball.display().to_string(),
            "-C",
            &root.display().to_string(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(!root.join("usr/bin/homestick").exists(), "a fresh root");
    fs::copy(&deb, root.join("tmp/homestick.deb")).unwrap();
    let r = sh(&format!(
        "cp -a {} {}",
        demo_base().display(),
        root.join("tmp/base").display()
    ));
    assert_eq!(r.code, 0, "{}", r.all());

    let r = in_root(&root, "dpkg -i /tmp/homestick.deb");
    assert_eq!(r.code, 0, "dpkg -i: {}", r.all());
    let r = in_root(
        &root,
        "dpkg -s homestick | grep -x 'Status: install ok installed'",
    );
    assert_eq!(r.code, 0, "{}", r.all());

    // A key, then the demo customer's image from the installed example profile, with the
    // installed static boot verifier (no --boot-verifier), then verify.
    let r = in_root(
        &root,
        "homestick keys generate --out /root/provider-test \
         && homestick build --profile /usr/share/doc/homestick/examples/profiles/stadt-musterhausen \
              --base /tmp/base --key /root/provider-test.key --output /root/stick.img \
         && homestick verify /root/stick.img --keyring /root/provider-test.pub",
    );
    assert_eq!(
        r.code,
        0,
        "build and verify in the station root: {}",
        r.all()
    );
    assert!(
        r.stdout.contains("TRUSTED: /root/stick.img"),
        "{}",
        r.stdout
    );
    // The UKI's initramfs holds the installed verifier as /init, byte for byte.
    let verifier = fs::read(root.join("usr/lib/homestick/homestick-boot")).unwrap();
    let probe = &verifier[verifier.len() / 2..verifier.len() / 2 + 4096];
    let img = fs::read(root.join("root/stick.img")).unwrap();
    assert!(
        img.windows(probe.len()).any(|w| w == probe),
        "the installed boot verifier is in the image"
    );

    // The man page of a subcommand.
    let r = in_root(&root, "MANPAGER=cat MANWIDTH=100 man homestick-flash");
    assert_eq!(r.code, 0, "man homestick-flash: {}", r.all());
    assert!(
        r.stdout.contains("homestick-flash") && r.stdout.contains("--keyring"),
        "{}",
        r.stdout
    );

    // bash completes `homestick fl<TAB>` as readline would call the completion function.
    let r = in_root(
        &root,
        ". /usr/share/bash-completion/bash_completion
         _completion_loader homestick || true  # 124: loaded, retry (bash-completion's convention)
         fn=$(complete -p homestick | sed -n 's/.*-F \\([^ ]*\\) .*/\\1/p')
         COMP_WORDS=(homestick fl); COMP_CWORD=1; COMP_LINE='homestick fl'; COMP_POINT=${#COMP_LINE}
         \"$fn\" homestick fl homestick
         echo \"completions: ${COMPREPLY[*]}\"",
    );
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout.trim_end().ends_with("completions: flash"),
        "{}",
        r.stdout
    );
}
