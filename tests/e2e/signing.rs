//! Signing operations: keys in a PKCS#11 token (SoftHSM2, a token the test initializes in a
//! temporary directory), key rotation with validity windows, signed revocation lists, image
//! expiry, and key hygiene (file modes, passphrases never shown).

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::*;
use homestick_testkit::build_args::Build;

/// A build's arguments as text (for the token's `hs`, which takes `&str`s).
fn texts(b: Build) -> Vec<String> {
    b.to_vec()
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

const SOFTHSM_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// A SoftHSM2 token "homestick" (user PIN 1234) in a temporary directory; SOFTHSM2_CONF must
/// be passed to every process that uses it.
struct SoftHsm {
    dir: tempfile::TempDir,
}

impl SoftHsm {
    fn new() -> SoftHsm {
        assert!(
            Path::new(SOFTHSM_MODULE).exists(),
            "{SOFTHSM_MODULE} missing: `cargo xtask test` installs softhsm2"
        );
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("tokens")).unwrap();
        fs::write(
            dir.path().join("softhsm2.conf"),
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                dir.path().join("tokens").display()
            ),
        )
        .unwrap();
        fs::write(dir.path().join("pin"), "1234\n").unwrap();
        let h = SoftHsm { dir };
        let r = h.run(
            "softhsm2-util",
            &[
                "--init-token",
                "--free",
                "--label",
                "homestick",
                "--pin",
                "1234",
                "--so-pin",
                "5678",
            ],
        );
        assert_eq!(r.code, 0, "{}", r.all());
        h
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("softhsm2.conf")
    }

    fn pin(&self) -> String {
        self.dir.path().join("pin").display().to_string()
    }

    /// Run `prog` with SOFTHSM2_CONF set.
    fn run(&self, prog: &str, args: &[&str]) -> Run {
        let mut c = std::process::Command::new(prog);
        c.args(args)
            .env("SOFTHSM2_CONF", self.conf())
            .env("SOURCE_DATE_EPOCH", EPOCH);
        let o = c.output();
        finish(&mut c, o)
    }

    fn hs(&self, args: &[&str]) -> Run {
        self.run(&bin().display().to_string(), args)
    }

    /// Import a private key file (PKCS#8 PEM, not encrypted) with its public half.
    fn import(&self, pem: &Path, label: &str, id: &str) {
        let r = self.run(
            "softhsm2-util",
            &[
                "--import",
                &pem.display().to_string(),
                "--token",
                "homestick",
                "--label",
                label,
                "--id",
                id,
                "--pin",
                "1234",
            ],
        );
        assert_eq!(r.code, 0, "{}", r.all());
    }
}

/// `src` (encrypted with `passphrase` or not) as an unencrypted PKCS#8 PEM at `out`, mode
/// 0600: what softhsm2-util imports.
fn plain_key(src: &Path, passphrase: Option<&str>, out: &Path) {
    let (s, o) = (src.display().to_string(), out.display().to_string());
    let mut args = vec!["pkey", "-in", &s, "-out", &o];
    let pass = passphrase.map(|p| format!("pass:{p}"));
    if let Some(p) = &pass {
        args.extend(["-passin", p]);
    }
    let r = tool("openssl", &args);
    assert_eq!(r.code, 0, "{}", r.all());
    homestick_testkit::private_mode(out);
}

fn openssl_verifies(public: &Path, data: &[u8], sig: &[u8], dir: &Path) -> Run {
    let (d, s) = (dir.join("data.bin"), dir.join("data.sig"));
    fs::write(&d, data).unwrap();
    fs::write(&s, sig).unwrap();
    tool(
        "openssl",
        &[
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            &public.display().to_string(),
            "-rawin",
            "-in",
            &d.display().to_string(),
            "-sigfile",
            &s.display().to_string(),
        ],
    )
}

#[test]
fn a_key_made_in_softhsm_signs_images_and_lists_and_an_imported_key_gives_the_same_bytes() {
    let fx = Fixture::new();
    let hsm = SoftHsm::new();
    let uri = "pkcs11:token=homestick;object=provider-2026";
    let generate = |out: &str| {
        let (pin, out) = (hsm.pin(), fx.path(out).display().to_string());
        hsm.hs(&[
            "keys",
            "generate",
            "--pkcs11",
            uri,
            "--module",
            SOFTHSM_MODULE,
            "--pin-file",
            &pin,
            "--out",
            &out,
        ])
    };
    let r = generate("provider-2026");
    assert_eq!(r.code, 0, "{}", r.all());
    let public = fx.path("provider-2026.pub");
    assert!(
        public.exists() && !fx.path("provider-2026.key").exists(),
        "only the .pub is written"
    );
    // The token holds it sensitive and never extractable.
    let r = hsm.run(
        "pkcs11-tool",
        &[
            "--module",
            SOFTHSM_MODULE,
            "--login",
            "--pin",
            "1234",
            "--list-objects",
            "--type",
            "privkey",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout.contains("provider-2026") && r.stdout.contains("never extractable"),
        "{}",
        r.stdout
    );
    // A second key under the same label is refused.
    let r = generate("again");
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr
            .contains("already holds an object labelled \"provider-2026\""),
        "{}",
        r.stderr
    );

    // An image signed in the token verifies with the exported .pub, and with openssl.
    let img = fx.path("hsm.img");
    let build = |key: &str, out: &Path, extra: &[&str]| {
        let a = texts(
            Build::bare()
                .opt("--profile", demo_profile())
                .opt("--base", fx.base())
                .opt("--key", key)
                .opt("--output", out)
                .opt("--pkcs11-module", SOFTHSM_MODULE)
                .opt("--passphrase-file", hsm.pin())
                .args(extra),
        );
        let args: Vec<&str> = a.iter().map(String::as_str).collect();
        hsm.hs(&args)
    };
    let r = build(uri, &img, &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    let r = verify(&img, &public);
    assert_eq!(r.code, 0, "{}", r.all());
    let r = openssl_verifies(
        &public,
        &esp_file(&img, "homestick/manifest.json"),
        &esp_file(&img, "homestick/manifest.sig"),
        fx.dir.path(),
    );
    assert_eq!(r.code, 0, "openssl: {}", r.all());
    assert!(
        r.stdout.contains("Signature Verified Successfully"),
        "{}",
        r.stdout
    );

    // A wrong PIN: one clear message, exit 2, no output.
    fs::write(fx.path("wrong-pin"), "9999\n").unwrap();
    let a = texts(
        Build::bare()
            .opt("--profile", demo_profile())
            .opt("--base", fx.base())
            .opt("--key", uri)
            .opt("--output", fx.path("never.img"))
            .opt("--pkcs11-module", SOFTHSM_MODULE)
            .opt("--passphrase-file", fx.path("wrong-pin")),
    );
    let r = hsm.hs(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("login: PinIncorrect"), "{}", r.stderr);
    assert!(!fx.path("never.img").exists());

    // A revocation list signed in the token: openssl checks it too.
    let list = fx.path("revocations.json");
    let r = hs(&[
        "revocations",
        "add",
        &list.display().to_string(),
        "--image-id",
        "0b1f6a8e-7d6e-4c1b-9a55-2f9e3c1d7b10",
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    let r = hsm.hs(&[
        "revocations",
        "sign",
        &list.display().to_string(),
        "--key",
        uri,
        "--pkcs11-module",
        SOFTHSM_MODULE,
        "--passphrase-file",
        &hsm.pin(),
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    let sig = fs::read(fx.path("revocations.json.sig")).unwrap();
    let r = openssl_verifies(&public, &fs::read(&list).unwrap(), &sig, fx.dir.path());
    assert_eq!(r.code, 0, "openssl: {}", r.all());

    // Ed25519 is deterministic: the test key imported into the token signs the same image,
    // byte for byte, as the same key read from its file.
    let plain = fx.path("test-plain.pem");
    plain_key(&test_key(), None, &plain);
    hsm.import(&plain, "imported", "01");
    let from_file = fx.build("file.img");
    let from_token = fx.path("token.img");
    let r = build("pkcs11:token=homestick;object=imported", &from_token, &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(
        sha(&from_file),
        sha(&from_token),
        "same key, same inputs: same bytes"
    );
}

#[test]
fn the_secure_boot_key_in_softhsm_signs_the_uki_as_the_key_file_does() {
    // The demo base has a kernel, so the image has a UKI to sign for Secure Boot.
    let base = homestick_testkit::env::demo_base();
    let verifier = homestick_testkit::env::boot_verifier();
    let hsm = SoftHsm::new();
    let d = tempfile::tempdir().unwrap();
    let sb_plain = d.path().join("db.pem");
    plain_key(
        Path::new(homestick_testkit::SB_KEY),
        Some("snakeoil"),
        &sb_plain,
    );
    hsm.import(&sb_plain, "db", "02");
    let plain = d.path().join("test-plain.pem");
    plain_key(&test_key(), None, &plain);
    hsm.import(&plain, "image", "01");
    let cert = homestick_testkit::SB_CERT;
    // The demo customer's image on the demo base, Secure-Boot-signed: `extra` names the keys.
    let build = |out: &Path, extra: &[&str]| {
        let a = texts(
            Build::bare()
                .opt("--profile", demo_profile())
                .opt("--base", &base)
                .opt("--boot-verifier", &verifier)
                .arg("--no-cache")
                .opt("--output", out)
                .args(extra),
        );
        hsm.hs(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let pin = hsm.pin();
    let in_token = [
        "--key",
        "pkcs11:token=homestick;object=image",
        "--passphrase-file",
        &pin,
        "--pkcs11-module",
        SOFTHSM_MODULE,
        "--secure-boot-key",
        "pkcs11:token=homestick;object=db",
        "--secure-boot-passphrase-file",
        &pin,
        "--secure-boot-cert",
        cert,
    ];
    let token = d.path().join("token.img");
    let r = build(&token, &in_token);
    assert_eq!(r.code, 0, "{}", r.all());
    let uki = d.path().join("uki.efi");
    fs::write(&uki, esp_file(&token, "EFI/BOOT/BOOTX64.EFI")).unwrap();
    let r = tool("sbverify", &["--cert", cert, &uki.display().to_string()]);
    assert_eq!(r.code, 0, "sbverify: {}", r.all());
    // RSA PKCS#1 v1.5 and Ed25519 are deterministic: the key files give the same bytes.
    let files = d.path().join("files.img");
    let sb_file = homestick_testkit::private_copy(Path::new(homestick_testkit::SB_KEY), d.path());
    fs::write(d.path().join("sbpw"), "snakeoil\n").unwrap();
    let (k, sk, sp) = (
        test_key().display().to_string(),
        sb_file.display().to_string(),
        d.path().join("sbpw").display().to_string(),
    );
    let r = build(
        &files,
        &[
            "--key",
            &k,
            "--secure-boot-key",
            &sk,
            "--secure-boot-passphrase-file",
            &sp,
            "--secure-boot-cert",
            cert,
        ],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(
        sha(&files),
        sha(&token),
        "same keys in files and in the token: same bytes"
    );
    // A certificate that is not the token key's is refused.
    let other = d.path().join("other-db");
    assert_eq!(
        hs(&["keys", "secure-boot", "--out", &other.display().to_string()]).code,
        0
    );
    let never = d.path().join("never.img");
    let other_crt = d.path().join("other-db.crt").display().to_string();
    let mut args: Vec<&str> = in_token[..in_token.len() - 2].to_vec();
    args.extend(["--secure-boot-cert", &other_crt]);
    let r = build(&never, &args);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr
            .contains("other-db.crt: does not belong to the key pkcs11:token=homestick;object=db"),
        "{}",
        r.stderr
    );
    assert!(!never.exists());
}

/// `homestick keys generate --out DIR/NAME`, not encrypted; returns the key id.
fn new_key(dir: &Path, name: &str) -> String {
    let r = hs(&[
        "keys",
        "generate",
        "--out",
        &dir.join(name).display().to_string(),
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    r.stdout
        .lines()
        .find_map(|l| l.strip_prefix("key id:"))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn rotation_the_old_key_is_refused_after_its_window_and_the_new_one_trusted_beside_it() {
    let fx = Fixture::new();
    let ring = fx.path("ring");
    fs::create_dir(&ring).unwrap();
    let old_id = new_key(&ring, "provider-2025");
    let new_id = new_key(&ring, "provider-2026");
    // The build time of every image here is EPOCH, 2026-11-30T00:53:20Z.
    fs::write(
        ring.join("keyring.toml"),
        "[[key]]\nfile = \"provider-2025.pub\"\ncomment = \"2025 key, retired\"\nnot_after = \"2026-11-01\"\n\n\
         [[key]]\nfile = \"provider-2026.pub\"\ncomment = \"2026 key\"\nnot_before = \"2026-11-01\"\n",
    )
    .unwrap();
    let sign_with = |name: &str, img: &str| {
        let key = ring.join(format!("{name}.key"));
        let r = Build::bare()
            .opt("--profile", demo_profile())
            .opt("--base", fx.base())
            .opt("--key", &key)
            .opt("--output", fx.path(img))
            .run();
        assert_eq!(r.code, 0, "{}", r.all());
        fx.path(img)
    };
    let old_img = sign_with("provider-2025", "old.img");
    let new_img = sign_with("provider-2026", "new.img");
    let r = verify(&new_img, &ring);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout
            .contains(&format!("signed by key {new_id} \"2026 key\"")),
        "{}",
        r.stdout
    );
    let r = verify(&old_img, &ring);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stdout.contains(&format!(
            "signature: key {} (2025 key, retired) signed this image, built 2026-11-30T00:53:20Z, after the key was retired at 2026-11-01T00:00:00Z",
            &old_id[..16]
        )),
        "{}",
        r.stdout
    );
    // The old key alone, without a window, still trusts its image: the window is the keyring's.
    assert_eq!(verify(&old_img, &ring.join("provider-2025.pub")).code, 0);
    // JSON names the key and its comment.
    let r = hs(&[
        "verify",
        &new_img.display().to_string(),
        "--keyring",
        &ring.display().to_string(),
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["key_id"], new_id.as_str());
    assert_eq!(v["key_comment"], "2026 key");
    // A .pub in the directory that keyring.toml does not list is refused (exit 2), not
    // silently trusted.
    new_key(&ring, "stray");
    let r = verify(&new_img, &ring);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr
            .contains("stray.pub is in the keyring directory but not listed"),
        "{}",
        r.stderr
    );
}

/// Sign `list` with `key`.
fn sign_list_with(list: &Path, key: &Path) {
    let r = hs(&[
        "revocations",
        "sign",
        &list.display().to_string(),
        "--key",
        &key.display().to_string(),
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
}

/// A keyring directory `ring` in `dir` with the test key and a revocation key `revoker`
/// (its private key beside the directory); returns (ring, revoker.key).
fn ring_with_revoker(dir: &Path) -> (PathBuf, PathBuf) {
    new_key(dir, "revoker");
    let ring = dir.join("ring");
    fs::create_dir_all(&ring).unwrap();
    fs::copy(test_pub(), ring.join("test.pub")).unwrap();
    fs::copy(dir.join("revoker.pub"), ring.join("revoker.pub")).unwrap();
    (ring, dir.join("revoker.key"))
}

#[test]
fn revocation_lists_refuse_a_key_an_image_and_a_user_offline_and_in_flash() {
    let fx = Fixture::new();
    let img = fx.build("demo.img");
    let image_id = inspect_json(&img)["image_id"].as_str().unwrap().to_string();
    let key_id = homestick_image::keys::load_public_key(&test_pub())
        .unwrap()
        .id;
    let list = fx.path("revocations.json");
    let l = list.display().to_string();
    // The lists are signed by a revocation key of the keyring, not by the image key they
    // revoke (a key cannot sign a list that revokes it).
    let (ring, revoker) = ring_with_revoker(fx.dir.path());
    let rg = ring.display().to_string();
    let sign_list = |list: &Path| sign_list_with(list, &revoker);
    let with_list = |target: &Path, extra: &[&str]| {
        let mut a = vec![
            "verify".to_string(),
            target.display().to_string(),
            "--keyring".into(),
            rg.clone(),
            "--revocations".into(),
            l.clone(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        hs(&a)
    };

    // An unrelated entry: trusted, and the output says which list was applied.
    let r = hs(&[
        "revocations",
        "add",
        &l,
        "--image-id",
        "0b1f6a8e-7d6e-4c1b-9a55-2f9e3c1d7b10",
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    sign_list(&list);
    let r = with_list(&img, &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout
            .contains("revocation list version 1: 0 key(s), 1 image(s), 0 user(s) revoked"),
        "{}",
        r.stdout
    );
    let r = openssl_verifies(
        &fx.path("revoker.pub"),
        &fs::read(&list).unwrap(),
        &fs::read(fx.path("revocations.json.sig")).unwrap(),
        fx.dir.path(),
    );
    assert_eq!(r.code, 0, "openssl: {}", r.all());

    // Each kind of entry refuses the image.
    let cases: [(&str, Vec<&str>, String); 2] = [
        (
            "image id",
            vec!["--image-id", &image_id],
            format!("revocation list version 2: image {image_id} is revoked"),
        ),
        (
            "key id",
            vec!["--key-id", &key_id],
            format!("revocation list version 3: the signing key {key_id} is revoked"),
        ),
    ];
    for (what, add, want) in cases {
        let mut a = vec!["revocations", "add", &l, "--keyring", &rg];
        a.extend(add);
        let r = hs(&a);
        assert_eq!(r.code, 0, "{what}: {}", r.all());
        // Changed: the old signature is gone, and an unsigned list is not taken.
        let r = with_list(&img, &[]);
        assert_eq!(r.code, 2, "{what}: {}", r.all());
        assert!(
            r.stderr.contains("revocations.json: not signed"),
            "{what}: {}",
            r.stderr
        );
        sign_list(&list);
        let r = with_list(&img, &[]);
        assert_eq!(r.code, 1, "{what}: {}", r.all());
        assert!(r.stdout.contains(&want), "{what}: {}", r.stdout);
    }

    // A list changed after signing, or signed by a key the keyring does not hold: exit 2.
    let signed = fs::read(&list).unwrap();
    fs::write(
        &list,
        String::from_utf8(signed.clone())
            .unwrap()
            .replace("\"version\": 3", "\"version\": 4"),
    )
    .unwrap();
    let r = with_list(&img, &[]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr.contains("does not verify it with any trusted key"),
        "{}",
        r.stderr
    );
    fs::write(&list, &signed).unwrap();
    new_key(fx.dir.path(), "stranger");
    let r = hs(&[
        "revocations",
        "sign",
        &l,
        "--key",
        &fx.path("stranger.key").display().to_string(),
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    let r = with_list(&img, &[]);
    assert_eq!(r.code, 2, "{}", r.all());
    sign_list(&list);

    // flash takes the list: the revoked image is not written, the stick keeps its bytes.
    let stick = fx.path("stick.bin");
    fs::write(&stick, vec![0x5a; 64 << 20]).unwrap();
    let lo = Loop::attach(&stick, &[]);
    let before = sha(&stick);
    let r = hs(&[
        "flash",
        &img.display().to_string(),
        "--keyring",
        &rg,
        "--revocations",
        &l,
        "--target",
        lo.path().to_str().unwrap(),
        "--allow-non-removable",
        "--yes",
        "--ledger",
        &fx.path("ledger.sqlite").display().to_string(),
    ]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stdout.contains("is revoked"), "{}", r.all());
    drop(lo);
    assert_eq!(sha(&stick), before, "nothing written");

    // A user: every image of that user in a set, and no other.
    let roster = fx.path("roster.csv");
    crate::roster::two_users(&roster);
    let set = fx.path("set");
    let r = Build::new(&demo_profile(), &fx.base(), &set)
        .opt("--roster", &roster)
        .run();
    assert_eq!(r.code, 0, "{}", r.all());
    let users = fx.path("users.json");
    let u = users.display().to_string();
    assert_eq!(
        hs(&[
            "revocations",
            "add",
            &u,
            "--user",
            "stadt-musterhausen/anna"
        ])
        .code,
        0
    );
    sign_list(&users);
    let v = |user: &str| {
        hs(&[
            "verify",
            &set.display().to_string(),
            "--user",
            user,
            "--keyring",
            &rg,
            "--revocations",
            &u,
        ])
    };
    let r = v("anna");
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stdout
            .contains("user anna of customer stadt-musterhausen is revoked"),
        "{}",
        r.stdout
    );
    assert_eq!(v("ben").code, 0);
    let r = hs(&["revocations", "add", &u, "--user", "anna", "--keyring", &rg]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("give CUSTOMER/USER"), "{}", r.stderr);
    let r = hs(&["revocations", "show", &u, "--keyring", &rg]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout.contains("user   stadt-musterhausen/anna"),
        "{}",
        r.stdout
    );
}

#[test]
fn a_revoked_or_retired_key_cannot_sign_a_list_and_an_older_or_unsigned_list_is_not_taken() {
    let fx = Fixture::new();
    let img = fx.build("demo.img");
    let d = fx.dir.path();
    let (ring, revoker) = ring_with_revoker(d);
    let revoker_id = homestick_image::keys::load_public_key(&d.join("revoker.pub"))
        .unwrap()
        .id;
    let test_id = homestick_image::keys::load_public_key(&test_pub())
        .unwrap()
        .id;
    let verify_with = |list: &Path, ring: &Path, extra: &[&str]| {
        let mut a = vec![
            "verify".to_string(),
            img.display().to_string(),
            "--keyring".into(),
            ring.display().to_string(),
            "--revocations".into(),
            list.display().to_string(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        hs(&a)
    };
    // A list made with `add` and signed; `entries` are add's flags.
    let made = |name: &str, entries: &[&str], key: &Path| {
        let list = d.join(name);
        let mut a = vec!["revocations", "add", list.to_str().unwrap()];
        a.extend(entries);
        let r = hs(&a);
        assert_eq!(r.code, 0, "{}", r.all());
        sign_list_with(&list, key);
        list
    };
    // A keyring.toml ring: the test key for images only, the revoker retired yesterday.
    let toml_ring = d.join("ring-toml");
    fs::create_dir_all(&toml_ring).unwrap();
    fs::copy(test_pub(), toml_ring.join("test.pub")).unwrap();
    fs::copy(d.join("revoker.pub"), toml_ring.join("revoker.pub")).unwrap();
    fs::write(
        toml_ring.join("keyring.toml"),
        format!(
            "[[key]]\nfile = \"test.pub\"\nroles = [\"images\"]\n\n[[key]]\nfile = \"revoker.pub\"\nroles = [\"revocations\"]\nnot_after = \"{}\"\n",
            homestick_image::time::rfc3339(now() - 86_400)
        ),
    )
    .unwrap();
    let other = "0b1f6a8e-7d6e-4c1b-9a55-2f9e3c1d7b10";
    let self_revoking = made("self.json", &["--key-id", &revoker_id], &revoker);
    let by_image_key = made("by-image-key.json", &["--image-id", other], &test_key());
    let good = made("good.json", &["--image-id", other], &revoker);
    let cases: Vec<(&str, PathBuf, PathBuf, Vec<&str>, String)> = vec![
        (
            "a list that revokes its own signing key",
            self_revoking,
            ring.clone(),
            vec![],
            format!("revokes the key that signed it ({}", &revoker_id[..16]),
        ),
        (
            "a list signed by a key whose roles are images only",
            by_image_key,
            toml_ring.clone(),
            vec![],
            "may not sign revocation lists".into(),
        ),
        (
            "a list signed by a retired revocation key",
            good.clone(),
            toml_ring.clone(),
            vec![],
            "the key was retired at".into(),
        ),
        (
            "a list older than the pinned floor",
            good.clone(),
            ring.clone(),
            vec!["--min-revocation-version", "2"],
            "version 1 is older than the lowest version taken here (2)".into(),
        ),
    ];
    table(
        &cases,
        |c| c.0.to_string(),
        |(_, list, ring, extra, want)| {
            let r = verify_with(list, ring, extra);
            match (r.code, r.stderr.contains(want.as_str())) {
                (2, true) => Ok(()),
                _ => Err(format!("exit {}: {}", r.code, r.all())),
            }
        },
    );
    // A key whose roles are revocations only does not sign images.
    let revonly = d.join("ring-revonly");
    fs::create_dir_all(&revonly).unwrap();
    fs::copy(test_pub(), revonly.join("test.pub")).unwrap();
    fs::write(
        revonly.join("keyring.toml"),
        "[[key]]\nfile = \"test.pub\"\nroles = [\"revocations\"]\n",
    )
    .unwrap();
    let r = verify(&img, &revonly);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stdout.contains("may not sign images"), "{}", r.stdout);
    // The good list is taken, and at its own version as the floor too.
    let r = verify_with(&good, &ring, &["--min-revocation-version", "1"]);
    assert_eq!(r.code, 0, "{}", r.all());
    // The image key may still revoke another key in a list signed by the revoker.
    let list = made("revokes-test.json", &["--key-id", &test_id], &revoker);
    let r = verify_with(&list, &ring, &[]);
    assert_eq!(r.code, 1, "{}", r.all());

    // `add` never extends a list whose signature does not verify: one planted on disk with
    // an entry removed, unsigned, is refused, and without --keyring an existing list is too.
    let planted = d.join("planted.json");
    fs::write(
        &planted,
        "{\"format\": \"homestick-revocations/1\", \"version\": 7}\n",
    )
    .unwrap();
    let p = planted.display().to_string();
    let rg = ring.display().to_string();
    let r = hs(&[
        "revocations",
        "add",
        &p,
        "--image-id",
        other,
        "--keyring",
        &rg,
    ]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("not signed"), "{}", r.stderr);
    assert!(!d.join("planted.json.sig").exists());
    let g = good.display().to_string();
    let r = hs(&["revocations", "add", &g, "--image-id", other]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("give --keyring"), "{}", r.stderr);
}

#[test]
fn an_expired_image_is_refused_and_one_in_its_last_days_warns() {
    let fx = Fixture::new();
    // Built two hours ago (after the demo profile's certificates became valid).
    let built = now() - 7200;
    let build = |name: &str, expires: &str| {
        let out = fx.path(name);
        let args = Build::new(&demo_profile(), &fx.base(), &out)
            .opt("--expires", expires)
            .to_vec();
        let r = hs_at(built, &args);
        assert_eq!(r.code, 0, "{}", r.all());
        out
    };
    let an_hour_after = homestick_image::time::rfc3339(built + 3600);
    let expired = build("expired.img", &an_hour_after);
    let r = verify(&expired, &test_pub());
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stdout
            .contains(&format!("expiry: the image expired at {an_hour_after}")),
        "{}",
        r.stdout
    );
    assert_eq!(inspect_json(&expired)["expires"], an_hour_after.as_str());

    let soon = build("soon.img", "+3");
    let r = verify(&soon, &test_pub());
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout.contains("warning: expiry: the image expires at")
            && r.stdout.contains("(in 3 day(s))"),
        "{}",
        r.stdout
    );

    let later = build("later.img", "+365");
    let r = verify(&later, &test_pub());
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(!r.stdout.contains("warning"), "{}", r.stdout);
    assert!(
        r.stdout.contains(&format!(
            "expires {}",
            homestick_image::time::rfc3339(built + 365 * 86_400)
        )),
        "{}",
        r.stdout
    );
}

/// Every regular file under `dir`, recursively.
fn all_files(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect()
}

#[test]
fn a_full_build_never_shows_the_passphrase_or_the_key() {
    let fx = Fixture::new();
    let passphrase = "Correct-Horse-7431-Battery";
    let pw = fx.path("pw");
    fs::write(&pw, format!("{passphrase}\n")).unwrap();
    let key = fx.path("enc");
    // The passphrase comes through a file descriptor (as from a secret store), never argv.
    let r = sh(&format!(
        "{} keys generate --out {} --passphrase-fd 3 3<{}",
        bin().display(),
        key.display(),
        pw.display()
    ));
    assert_eq!(r.code, 0, "{}", r.all());
    let key_file = fx.path("enc.key");
    let pem = fs::read_to_string(&key_file).unwrap();
    assert!(pem.contains("ENCRYPTED PRIVATE KEY"));
    // The secrets to look for: the passphrase, the Ed25519 seed (raw and hex), the PKCS#8 DER
    // of the key (base64 as in an unencrypted PEM) and the encrypted PEM's body.
    let der = fx.path("plain.der");
    let r = tool(
        "openssl",
        &[
            "pkey",
            "-in",
            &key_file.display().to_string(),
            "-passin",
            &format!("file:{}", pw.display()),
            "-outform",
            "DER",
            "-out",
            &der.display().to_string(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    let der = fs::read(der).unwrap();
    let seed = der[der.len() - 32..].to_vec();
    let b64 = |b: &[u8]| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(b)
    };
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("passphrase", passphrase.as_bytes().to_vec()),
        ("seed", seed.clone()),
        ("seed hex", homestick_image::hash::hex(&seed).into_bytes()),
        ("PKCS#8 base64", b64(&der).as_bytes()[..40].to_vec()),
        ("encrypted PEM body", body.as_bytes()[..40].to_vec()),
    ];
    let img = fx.path("out/demo.img");
    fs::create_dir(fx.path("out")).unwrap();
    let cache = fx.path("cache");
    let run = sh(&format!(
        "SOURCE_DATE_EPOCH={EPOCH} {} build --profile {} --base {} --key {} --passphrase-fd 3 --output {} --cache-dir {} 3<{}",
        bin().display(),
        demo_profile().display(),
        fx.base().display(),
        key_file.display(),
        img.display(),
        cache.display(),
        pw.display()
    ));
    assert_eq!(run.code, 0, "{}", run.all());
    let verify_run = verify(&img, &fx.path("enc.pub"));
    assert_eq!(verify_run.code, 0, "{}", verify_run.all());
    let inspect_run = hs(&["inspect", &img.display().to_string()]);
    let mut haystacks: Vec<(String, Vec<u8>)> = vec![
        ("build output".into(), run.all().into_bytes()),
        ("verify output".into(), verify_run.all().into_bytes()),
        ("inspect output".into(), inspect_run.all().into_bytes()),
    ];
    for f in all_files(&fx.path("out"))
        .into_iter()
        .chain(all_files(&cache))
    {
        haystacks.push((f.display().to_string(), fs::read(&f).unwrap()));
    }
    assert!(
        haystacks.len() >= 4,
        "the image and the cache were searched"
    );
    for (name, hay) in &haystacks {
        for (what, needle) in &secrets {
            assert!(
                !hay.windows(needle.len()).any(|w| w == needle.as_slice()),
                "the {what} appears in {name}"
            );
        }
    }
    // A wrong passphrase through the descriptor: refused, and not echoed either.
    fs::write(fx.path("wrong"), "Wrong-Horse-0000\n").unwrap();
    let r = sh(&format!(
        "{} build --profile {} --base {} --key {} --passphrase-fd 3 --output {} 3<{}",
        bin().display(),
        demo_profile().display(),
        fx.base().display(),
        key_file.display(),
        fx.path("out/never.img").display(),
        fx.path("wrong").display()
    ));
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr.contains("wrong passphrase") && !r.all().contains("Wrong-Horse"),
        "{}",
        r.all()
    );
}

#[test]
fn without_a_file_or_descriptor_the_terminal_is_asked_without_echo() {
    let fx = Fixture::new();
    let pass = "Typed-At-The-Terminal-42";
    // `script` gives homestick a terminal; the input is typed after each prompt.
    let typed = |script_cmd: &str, times: usize| {
        let feed: String = (0..times)
            .map(|_| format!("sleep 2; printf '%s\\n' '{pass}'; "))
            .collect();
        sh(&format!(
            "({feed} sleep 2) | script -qec \"{script_cmd}\" /dev/null"
        ))
    };
    let key = fx.path("k");
    let r = typed(
        &format!(
            "{} keys generate --out {} --ask-passphrase",
            bin().display(),
            key.display()
        ),
        2,
    );
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout.contains("New passphrase for") && r.stdout.contains("(mode 0600, encrypted)"),
        "{}",
        r.stdout
    );
    assert!(!r.all().contains(pass), "echoed: {}", r.all());
    fs::write(fx.path("pw"), format!("{pass}\n")).unwrap();
    let k = fx.path("k.key").display().to_string();
    let r = tool(
        "openssl",
        &[
            "pkey",
            "-in",
            &k,
            "-passin",
            &format!("file:{}", fx.path("pw").display()),
            "-noout",
        ],
    );
    assert_eq!(
        r.code,
        0,
        "the typed passphrase encrypts the key: {}",
        r.all()
    );
    // A build with the encrypted key and neither --passphrase-file nor --passphrase-fd asks.
    let img = fx.path("t.img");
    let r = typed(
        &format!(
            "SOURCE_DATE_EPOCH={EPOCH} {} build --profile {} --base {} --key {k} --output {}",
            bin().display(),
            demo_profile().display(),
            fx.base().display(),
            img.display()
        ),
        1,
    );
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout.contains(&format!("Passphrase for {k}:")),
        "{}",
        r.stdout
    );
    assert!(!r.all().contains(pass), "echoed: {}", r.all());
    assert_eq!(verify(&img, &fx.path("k.pub")).code, 0);
    // Without a terminal, nothing is asked: the message names the options.
    let r = Build::bare()
        .opt("--profile", demo_profile())
        .opt("--base", fx.base())
        .opt("--key", &k)
        .opt("--output", fx.path("u.img"))
        .run();
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr
            .contains("the key is encrypted: give --passphrase-file or --passphrase-fd"),
        "{}",
        r.stderr
    );
}
