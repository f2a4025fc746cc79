//! Secure Boot signing: Authenticode (PKCS#7 SignedData, RSA/SHA-256) for PE images, natively.
//!
//! The structures are small and fixed, so they are written as DER by hand, in the shape
//! sbsign produces (SpcIndirectDataContent with SpcPeImageData "<<<Obsolete>>>"), and checked
//! by `sbverify` and by OVMF with Secure Boot enforced in the tests.

use std::fs;
use std::path::{Path, PathBuf};

use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
use rsa::signature::{SignatureEncoding, Signer};
use rsa::RsaPrivateKey;
use sha2::{Digest, Sha256};
use x509_cert::der::{Decode, DecodePem, Encode};

use crate::pe::{self, u32_at};

/// A problem with Secure Boot keys or signing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SbError {
    /// A key or certificate file is unusable.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The image cannot be signed.
    #[error("signing: {0}")]
    Sign(String),
}

fn file_err(path: &Path, reason: impl Into<String>) -> SbError {
    SbError::File {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

// --- minimal DER ---------------------------------------------------------------------------

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    let n = content.len();
    if n < 0x80 {
        v.push(n as u8);
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .iter()
            .copied()
            .skip_while(|&b| b == 0)
            .collect();
        v.push(0x80 | bytes.len() as u8);
        v.extend(bytes);
    }
    v.extend_from_slice(content);
    v
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x30, &cat(parts))
}

const OID_SHA256: &[u8] = &[
    0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
];
const OID_SIGNED_DATA: &[u8] = &[
    0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x02,
];
const OID_SPC_INDIRECT_DATA: &[u8] = &[
    0x06, 0x0A, 0x2B, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x01, 0x04,
];
const OID_SPC_PE_IMAGE_DATA: &[u8] = &[
    0x06, 0x0A, 0x2B, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x01, 0x0F,
];
const OID_CONTENT_TYPE: &[u8] = &[
    0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x03,
];
const OID_MESSAGE_DIGEST: &[u8] = &[
    0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x04,
];
const OID_RSA_ENCRYPTION: &[u8] = &[
    0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01,
];
const NULL: &[u8] = &[0x05, 0x00];

// --- the Authenticode image hash -------------------------------------------------------------

fn rd32(b: &[u8], at: usize) -> Result<u32, SbError> {
    u32_at(b, at).map_err(|e| SbError::Sign(e.to_string()))
}

/// SHA-256 Authenticode digest of an unsigned PE image: everything but the checksum, the
/// certificate-table directory entry and the certificate table itself, sections in file order.
pub fn pe_digest(pe: &[u8]) -> Result<[u8; 32], SbError> {
    let l = pe::layout(pe).map_err(|e| SbError::Sign(e.to_string()))?;
    let checksum = l.checksum();
    let cert_dir = l.cert_dir();
    let headers = rd32(pe, l.opt + 60)? as usize;
    let cert_size = rd32(pe, cert_dir + 4)? as usize;
    if headers > pe.len() || cert_dir + 8 > headers {
        return Err(SbError::Sign("inconsistent PE headers".into()));
    }
    let mut h = Sha256::new();
    h.update(&pe[..checksum]);
    h.update(&pe[checksum + 4..cert_dir]);
    h.update(&pe[cert_dir + 8..headers]);
    let mut sections = Vec::new();
    for i in 0..l.nsections {
        let s = l.section(i);
        let size = rd32(pe, s + 16)? as usize;
        let ptr = rd32(pe, s + 20)? as usize;
        if size > 0 {
            sections.push((ptr, size));
        }
    }
    sections.sort_unstable();
    let mut end = headers;
    for (ptr, size) in sections {
        let data = pe
            .get(ptr..ptr + size)
            .ok_or_else(|| SbError::Sign("section past the end of the file".into()))?;
        h.update(data);
        end = end.max(ptr + size);
    }
    let trailing_end = pe.len().saturating_sub(cert_size);
    if trailing_end > end {
        h.update(&pe[end..trailing_end]);
    }
    Ok(h.finalize().into())
}

// --- keys ------------------------------------------------------------------------------------

/// A loaded signing key with its certificate.
#[derive(Debug, Clone)]
pub struct SbKey {
    key: RsaPrivateKey,
    cert_der: Vec<u8>,
    cert: x509_cert::Certificate,
}

/// Load an RSA private key (PKCS#8 PEM, encrypted or not, or PKCS#1 PEM) and its X.509
/// certificate (PEM or DER), and check that they belong together.
pub fn load(
    key_path: &Path,
    cert_path: &Path,
    passphrase: Option<&[u8]>,
) -> Result<SbKey, SbError> {
    let text = fs::read_to_string(key_path)
        .map_err(|e| file_err(key_path, format!("cannot read: {e}")))?;
    let (label, der) = pkcs8::der::pem::decode_vec(text.trim().as_bytes())
        .map_err(|e| file_err(key_path, format!("not a PEM key: {e}")))?;
    let key = match label {
        "PRIVATE KEY" => RsaPrivateKey::from_pkcs8_der(&der)
            .map_err(|e| file_err(key_path, format!("not an RSA key: {e}")))?,
        "RSA PRIVATE KEY" => {
            use rsa::pkcs1::DecodeRsaPrivateKey;
            RsaPrivateKey::from_pkcs1_der(&der)
                .map_err(|e| file_err(key_path, format!("not an RSA key: {e}")))?
        }
        "ENCRYPTED PRIVATE KEY" => {
            let doc = homestick_image::keys::decrypt_pkcs8(
                &der,
                passphrase,
                "--secure-boot-passphrase-file",
            )
            .map_err(|e| file_err(key_path, e.to_string()))?;
            RsaPrivateKey::from_pkcs8_der(doc.as_bytes())
                .map_err(|e| file_err(key_path, format!("not an RSA key: {e}")))?
        }
        other => {
            return Err(file_err(
                key_path,
                format!("PEM label {other:?}: expected an RSA private key"),
            ))
        }
    };
    let raw = fs::read(cert_path).map_err(|e| file_err(cert_path, format!("cannot read: {e}")))?;
    let cert = if raw.starts_with(b"-----BEGIN") {
        x509_cert::Certificate::from_pem(&raw)
    } else {
        x509_cert::Certificate::from_der(&raw)
    }
    .map_err(|e| file_err(cert_path, format!("not an X.509 certificate: {e}")))?;
    let cert_spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| file_err(cert_path, e.to_string()))?;
    let key_spki = key
        .to_public_key()
        .to_public_key_der()
        .map_err(|e| file_err(key_path, e.to_string()))?;
    if cert_spki != key_spki.as_bytes() {
        return Err(file_err(
            cert_path,
            format!("does not belong to the key {}", key_path.display()),
        ));
    }
    let cert_der = cert
        .to_der()
        .map_err(|e| file_err(cert_path, e.to_string()))?;
    Ok(SbKey {
        key,
        cert_der,
        cert,
    })
}

// --- signing ---------------------------------------------------------------------------------

/// Sign an unsigned PE image: returns the image with an Authenticode certificate table.
pub fn sign(pe: &[u8], k: &SbKey) -> Result<Vec<u8>, SbError> {
    let l = pe::layout(pe).map_err(|e| SbError::Sign(e.to_string()))?;
    let cert_dir = l.cert_dir();
    if rd32(pe, cert_dir)? != 0 || rd32(pe, cert_dir + 4)? != 0 {
        return Err(SbError::Sign("the image is already signed".into()));
    }
    let digest = pe_digest(pe)?;
    let obsolete: Vec<u8> = "<<<Obsolete>>>"
        .encode_utf16()
        .flat_map(u16::to_be_bytes)
        .collect();
    let pe_image_data = seq(&[
        &[0x03, 0x01, 0x00],
        &tlv(0xA0, &tlv(0xA2, &tlv(0x80, &obsolete))),
    ]);
    let spc_data = seq(&[OID_SPC_PE_IMAGE_DATA, &pe_image_data]);
    let digest_info = seq(&[&seq(&[OID_SHA256, NULL]), &tlv(0x04, &digest)]);
    let indirect = seq(&[&spc_data, &digest_info]);
    // The message digest covers the content of SpcIndirectDataContent, not its tag and length.
    let header_len = indirect.len() - (spc_data.len() + digest_info.len());
    let content_digest = Sha256::digest(&indirect[header_len..]);
    let attr_content_type = seq(&[OID_CONTENT_TYPE, &tlv(0x31, OID_SPC_INDIRECT_DATA)]);
    let attr_digest = seq(&[OID_MESSAGE_DIGEST, &tlv(0x31, &tlv(0x04, &content_digest))]);
    // DER SET OF: sorted by encoding; the content-type attribute is the shorter one.
    let mut attrs = [attr_content_type, attr_digest];
    attrs.sort();
    let attrs_body = cat(&[&attrs[0], &attrs[1]]);
    let signed_attrs_for_signature = tlv(0x31, &attrs_body);
    let signature = SigningKey::<Sha256>::new(k.key.clone())
        .sign(&signed_attrs_for_signature)
        .to_vec();
    let tbs = &k.cert.tbs_certificate;
    let issuer = tbs
        .issuer
        .to_der()
        .map_err(|e| SbError::Sign(e.to_string()))?;
    let serial = tbs
        .serial_number
        .to_der()
        .map_err(|e| SbError::Sign(e.to_string()))?;
    let signer_info = seq(&[
        &[0x02, 0x01, 0x01],
        &seq(&[&issuer, &serial]),
        &seq(&[OID_SHA256, NULL]),
        &tlv(0xA0, &attrs_body),
        &seq(&[OID_RSA_ENCRYPTION, NULL]),
        &tlv(0x04, &signature),
    ]);
    let signed_data = seq(&[
        &[0x02, 0x01, 0x01],
        &tlv(0x31, &seq(&[OID_SHA256, NULL])),
        &seq(&[OID_SPC_INDIRECT_DATA, &tlv(0xA0, &indirect)]),
        &tlv(0xA0, &k.cert_der),
        &tlv(0x31, &signer_info),
    ]);
    let pkcs7 = seq(&[OID_SIGNED_DATA, &tlv(0xA0, &signed_data)]);
    // WIN_CERTIFICATE: length, revision 2.0, type PKCS_SIGNED_DATA; 8-byte aligned.
    let mut out = pe.to_vec();
    while out.len() % 8 != 0 {
        out.push(0);
    }
    let table_at = out.len();
    let length = 8 + pkcs7.len();
    out.extend_from_slice(&(length as u32).to_le_bytes());
    out.extend_from_slice(&0x0200u16.to_le_bytes());
    out.extend_from_slice(&0x0002u16.to_le_bytes());
    out.extend_from_slice(&pkcs7);
    while out.len() % 8 != 0 {
        out.push(0);
    }
    let table_size = out.len() - table_at;
    out[cert_dir..cert_dir + 4].copy_from_slice(&(table_at as u32).to_le_bytes());
    out[cert_dir + 4..cert_dir + 8].copy_from_slice(&(table_size as u32).to_le_bytes());
    Ok(out)
}
