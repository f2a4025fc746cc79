//! `homestick keys`: signing keys (file or PKCS#11) and the Secure Boot key pair, and the
//! passphrases and PINs they take.

use crate::output::out;
use crate::*;

/// A passphrase from --passphrase-file or --passphrase-fd, if one was given.
pub(crate) fn given_secret(s: &SecretArgs) -> Result<Option<Passphrase>, Failure> {
    match (&s.passphrase_file, s.passphrase_fd) {
        (Some(f), _) => keys::read_passphrase_file(f).map(Some).map_err(usage),
        (None, Some(fd)) => keys::read_passphrase_fd(fd).map(Some).map_err(usage),
        (None, None) => Ok(None),
    }
}

/// Ask on the terminal (without echo); `None` if there is no terminal.
pub(crate) fn ask(prompt: &str) -> Result<Option<Passphrase>, Failure> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        return Ok(None);
    }
    let pw = rpassword::prompt_password(prompt)
        .map_err(|e| usage(format!("reading the passphrase from the terminal: {e}")))?;
    if pw.is_empty() {
        return Err(usage("the passphrase is empty"));
    }
    Ok(Some(Passphrase::new(pw.into_bytes())))
}

/// The passphrase for the private key file `key`: given, else asked on a terminal when the
/// key is encrypted, else none (an encrypted key then fails with the options that give one).
pub(crate) fn key_passphrase(s: &SecretArgs, key: &Path) -> Result<Option<Passphrase>, Failure> {
    if let Some(p) = given_secret(s)? {
        return Ok(Some(p));
    }
    if keys::is_encrypted(key) {
        return ask(&format!("Passphrase for {}: ", key.display()));
    }
    Ok(None)
}

/// The passphrase or PIN for `--key`: given, else asked on a terminal when the key file is
/// encrypted or the key is in a token.
pub(crate) fn secret_for(key: &str, s: &SecretArgs) -> Result<Option<Passphrase>, Failure> {
    if key.starts_with("pkcs11:") {
        if let Some(p) = given_secret(s)? {
            return Ok(Some(p));
        }
        if key.contains("pin-source=") {
            return Ok(None);
        }
        return ask(&format!("User PIN for {key}: "));
    }
    key_passphrase(s, Path::new(key))
}

/// `--out DIR/NAME`: DIR must exist (checked before a key is made, in a token or not).
pub(crate) fn out_dir_exists(out: &Path) -> Result<(), Failure> {
    match out.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) if !parent.is_dir() => Err(usage(format!(
            "--out: directory {} does not exist",
            parent.display()
        ))),
        _ => Ok(()),
    }
}

pub(crate) fn keys_generate(
    out: &Path,
    secret: &SecretArgs,
    ask_twice: bool,
) -> Result<(), Failure> {
    let pw = match given_secret(secret)? {
        Some(p) => Some(p),
        None if ask_twice => {
            let first = ask(&format!("New passphrase for {}.key: ", out.display()))?
                .ok_or_else(|| usage("--ask-passphrase needs a terminal; use --passphrase-file or --passphrase-fd"))?;
            let again = ask("The same passphrase again: ")?
                .ok_or_else(|| usage("--ask-passphrase needs a terminal"))?;
            if first != again {
                return Err(usage("the two passphrases differ; nothing was written"));
            }
            Some(first)
        }
        None => None,
    };
    out_dir_exists(out)?;
    let g = homestick_signing::keygen::ed25519(out, pw.as_ref().map(Passphrase::as_bytes))
        .map_err(usage)?;
    out!(
        "private key: {} (mode 0600{})",
        g.private.display(),
        if pw.is_some() { ", encrypted" } else { "" }
    );
    out!("public key:  {}", g.public.display());
    out!("key id:      {}", g.id);
    Ok(())
}

pub(crate) fn keys_generate_pkcs11(
    out: &Path,
    uri: &str,
    module: Option<&Path>,
    pin: &SecretArgs,
) -> Result<(), Failure> {
    use ed25519_dalek::pkcs8::EncodePublicKey;
    out_dir_exists(out)?;
    let public_path = homestick_signing::keygen::new_key_files(out, &["pub"]).map_err(usage)?;
    let pin = secret_for(uri, pin)?;
    let public = homestick_signing::pkcs11::generate_ed25519(uri, module, pin.as_ref())
        .map_err(|e| usage(format!("--pkcs11 {e}")))?;
    let pem = public
        .to_public_key_pem(Default::default())
        .map_err(|e| usage(format!("encoding the public key: {e}")))?;
    homestick_signing::keygen::write_public(&public_path[0], pem.as_bytes()).map_err(usage)?;
    out!("private key: in the token, not extractable: {uri}");
    out!("public key:  {}", public_path[0].display());
    out!("key id:      {}", keys::key_id(&public));
    Ok(())
}

/// The image-signing key named by `--key`: a PEM file, or a `pkcs11:` URI.
pub(crate) fn open_signer(
    key: &str,
    secret: &SecretArgs,
    module: Option<&Path>,
) -> Result<homestick_signing::signer::Signer, Failure> {
    let pw = secret_for(key, secret)?;
    homestick_signing::signer::Signer::open(key, pw.as_ref(), module).map_err(usage)
}

pub(crate) fn keys_secure_boot(out: &Path, name: &str) -> Result<(), Failure> {
    out_dir_exists(out)?;
    let g = homestick_signing::keygen::secure_boot(out, name).map_err(usage)?;
    out!("private key: {} (RSA 2048, mode 0600)", g.key.display());
    out!(
        "certificate: {} (PEM), {} (DER, for firmware setup menus)",
        g.crt.display(),
        g.cer.display()
    );
    Ok(())
}
