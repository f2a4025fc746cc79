//! The first-start guide in a real browser: `homestick guide`, printed to PDF by headless
//! Chromium, the pages rendered (pdftoppm) and read (pdftotext, and tesseract on the page with
//! the enrolment steps). The steps are those the shim test types on MokManager's screens.

use std::path::Path;

use crate::common::*;
use homestick_formats::shim;

/// Words of a text with its line breaks and runs of spaces as single spaces.
fn words(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether the words of `sentence` occur in `text` in order, with at most as many other words
/// between them as the sentence has (table cells on one line interleave in extracted text).
fn reads_in_order(text: &str, sentence: &str) -> bool {
    let t: Vec<&str> = text.split_whitespace().collect();
    let want: Vec<&str> = sentence.split_whitespace().collect();
    let Some(first) = want.first() else {
        return true;
    };
    (0..t.len()).filter(|&i| t[i] == *first).any(|start| {
        let (mut at, mut i) = (1, start + 1);
        let limit = start + 2 * want.len() + 1;
        while at < want.len() && i < t.len().min(limit) {
            if t[i] == want[at] {
                at += 1;
            }
            i += 1;
        }
        at == want.len()
    })
}

/// The PDF of `html`, printed by headless Chromium with its own profile directory.
fn print_to_pdf(html: &Path, dir: &Path) -> std::path::PathBuf {
    let pdf = dir.join("guide.pdf");
    let r = tool(
        "timeout",
        &[
            "120".to_string(),
            "chromium".into(),
            "--headless".into(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--no-pdf-header-footer".into(),
            format!("--user-data-dir={}", dir.join("chromium").display()),
            format!("--print-to-pdf={}", pdf.display()),
            format!("file://{}", html.display()),
        ],
    );
    assert!(pdf.exists(), "chromium wrote no PDF: {}", r.all());
    pdf
}

#[test]
fn words_are_found_in_order_across_interleaved_cells() {
    assert!(reads_in_order(
        "Den Stick X wählen Eingabetaste (er steht)",
        "Den Stick X wählen (er steht)"
    ));
    assert!(!reads_in_order("Den Stick wählen", "Den Stick X wählen"));
    assert!(!reads_in_order("wählen X Stick Den", "Den Stick X wählen"));
}

#[test]
fn the_first_start_guide_prints_on_a4_with_every_enrolment_step_in_both_languages() {
    let d = tempfile::tempdir().unwrap();
    let html = d.path().join("guide.html");
    let r = hs(&[
        "guide".as_ref(),
        "--profile".as_ref(),
        demo_profile().as_os_str(),
        "--out".as_ref(),
        html.as_os_str(),
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    let pdf = print_to_pdf(&html, d.path());
    let info = tool("pdfinfo", &[&pdf]);
    let pages: usize = info
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    eprintln!(
        "guide.pdf: {pages} pages; {}",
        info.stdout
            .lines()
            .find(|l| l.starts_with("Page size"))
            .unwrap_or("")
    );
    assert!((2..=6).contains(&pages), "{}", info.stdout);
    assert!(info.stdout.contains("(A4)"), "{}", info.stdout);

    let text = words(&tool("pdftotext", &[pdf.as_os_str(), "-".as_ref()]).stdout);
    let mut checked = vec![
        "Stadt Musterhausen",
        "+49 5555 1234-100",
        "Advanced startup",
        "Erweiterter Start",
        "Fast Startup",
        "Microsoft 3rd Party UEFI CA",
    ];
    let steps = shim::enrolment(&shim::esp_root(&[]));
    for s in &steps {
        checked.push(s.screen);
    }
    for want in &checked {
        assert!(text.contains(want), "the PDF lacks {want:?}:\n{text}");
    }
    for s in &steps {
        for todo in [&s.todo.0, &s.todo.1] {
            assert!(
                reads_in_order(&text, todo),
                "the PDF lacks {todo:?}:\n{text}"
            );
        }
    }

    // Every page has ink, and the enrolment page reads as the screens MokManager shows.
    let prefix = d.path().join("page");
    let r = tool(
        "pdftoppm",
        &[
            "-r".as_ref(),
            "150".as_ref(),
            "-png".as_ref(),
            pdf.as_os_str(),
            prefix.as_os_str(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    let mut read = String::new();
    for n in 1..=pages {
        let png = d.path().join(format!("page-{n}.png"));
        assert!(png.exists(), "no image of page {n}");
        let ocr = tool(
            "tesseract",
            &[png.as_os_str(), "-".as_ref(), "-l".as_ref(), "eng".as_ref()],
        );
        assert_eq!(ocr.code, 0, "tesseract: {}", ocr.all());
        assert!(
            ocr.stdout.split_whitespace().count() > 20,
            "page {n} is nearly empty: {}",
            ocr.stdout
        );
        read.push_str(&ocr.stdout);
    }
    let read = words(&read);
    for want in [
        "Enroll key from disk",
        "Enroll the key(s)?",
        "homestick.cer",
        "View key 0",
    ] {
        assert!(
            read.contains(want),
            "tesseract did not read {want:?} on the pages:\n{read}"
        );
    }
    eprintln!(
        "guide.pdf: {} phrases checked in the text, 4 read from the rendered pages",
        checked.len() + 2 * steps.len()
    );
}
