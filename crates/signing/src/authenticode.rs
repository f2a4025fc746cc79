//! Secure Boot signing: Authenticode (PKCS#7 SignedData, RSA/SHA-256) for PE images, natively.
//!
//! The PKCS#7 structure is the `cms` crate's SignedData; the three Authenticode types in it
//! (SpcIndirectDataContent, SpcPeImageData, DigestInfo) are typed `der` sequences, in the shape
//! sbsign produces (SpcPeImageData with the file "<<<Obsolete>>>"). DER is canonical, so the
//! bytes are what the hand-written encoder of earlier versions produced; `sbverify` and OVMF
//! with Secure Boot enforced check them in the tests.

use std::fs;
use std::path::{Path, PathBuf};

use der::asn1::{ContextSpecific, ObjectIdentifier, OctetString};
use der::oid::db::rfc5911::{ID_CONTENT_TYPE, ID_MESSAGE_DIGEST, ID_SIGNED_DATA};
use der::oid::db::rfc5912::{ID_SHA_256, RSA_ENCRYPTION};
use der::{TagMode, TagNumber};
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
use rsa::signature::{SignatureEncoding, Signer};
use rsa::RsaPrivateKey;
use sha2::{Digest, Sha256};
use x509_cert::der::{Decode, DecodePem, Encode};
use x509_cert::spki::AlgorithmIdentifierOwned;

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
    /// The key in a PKCS#11 token is unusable.
    #[error(transparent)]
    Token(#[from] crate::pkcs11::Pkcs11Error),
}

fn file_err(path: &Path, reason: impl Into<String>) -> SbError {
    SbError::File {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

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

/// Where the RSA key signs: in memory, or inside a PKCS#11 token.
#[derive(Debug, Clone)]
enum RsaSigner {
    File(Box<RsaPrivateKey>),
    Token(std::sync::Arc<crate::pkcs11::TokenKey>),
}

/// A loaded signing key with its certificate.
#[derive(Debug, Clone)]
pub struct SbKey {
    key: RsaSigner,
    cert: x509_cert::Certificate,
}

/// The subject of a DER certificate as one line (`CN=…, O=…`), or a note that it is unreadable.
pub fn subject_of(der: &[u8]) -> String {
    match x509_cert::Certificate::from_der(der) {
        Ok(c) => c.tbs_certificate.subject.to_string(),
        Err(e) => format!("(not a readable X.509 certificate: {e})"),
    }
}

impl SbKey {
    /// The certificate, DER-encoded (what MokManager enrols and shim's vendor certificate is).
    pub fn cert_der(&self) -> Result<Vec<u8>, SbError> {
        self.cert
            .to_der()
            .map_err(|e| SbError::Sign(format!("encoding the certificate: {e}")))
    }

    /// The certificate's subject.
    pub fn subject(&self) -> String {
        self.cert.tbs_certificate.subject.to_string()
    }

    /// RSA PKCS#1 v1.5 with SHA-256 over `msg`.
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, SbError> {
        match &self.key {
            RsaSigner::File(k) => Ok(SigningKey::<Sha256>::new((**k).clone()).sign(msg).to_vec()),
            RsaSigner::Token(t) => t
                .sign_rsa_sha256(msg)
                .map_err(|e| SbError::Sign(e.to_string())),
        }
    }
}

/// Load the Secure Boot key `key`: a `pkcs11:` URI (`pin` is the token's PIN), or an RSA
/// private key file (PKCS#8 PEM, encrypted with `pin` or not, or PKCS#1 PEM); and its X.509
/// certificate (PEM or DER); and check that they belong together.
pub fn load_any(
    key: &str,
    cert_path: &Path,
    pin: Option<&[u8]>,
    module: Option<&Path>,
) -> Result<SbKey, SbError> {
    if !key.starts_with("pkcs11:") {
        return load(Path::new(key), cert_path, pin);
    }
    let pin = pin.map(|p| homestick_image::keys::Passphrase::new(p.to_vec()));
    let token = crate::pkcs11::TokenKey::open_rsa(key, module, pin.as_ref())?;
    let cert = read_cert(cert_path)?;
    let k = SbKey {
        key: RsaSigner::Token(std::sync::Arc::new(token)),
        cert,
    };
    // The certificate must be the token key's: a signature it verifies proves it.
    use rsa::pkcs8::DecodePublicKey;
    let spki = k
        .cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| file_err(cert_path, e.to_string()))?;
    let public = rsa::RsaPublicKey::from_public_key_der(&spki)
        .map_err(|e| file_err(cert_path, format!("not an RSA certificate: {e}")))?;
    let probe = b"homestick: does this certificate belong to the token's key?";
    let sig = k.sign(probe)?;
    let ok = rsa::pkcs1v15::Signature::try_from(sig.as_slice())
        .ok()
        .is_some_and(|sig| {
            use rsa::signature::Verifier;
            rsa::pkcs1v15::VerifyingKey::<Sha256>::new(public)
                .verify(probe, &sig)
                .is_ok()
        });
    if !ok {
        return Err(file_err(
            cert_path,
            format!("does not belong to the key {key}"),
        ));
    }
    Ok(k)
}

fn read_cert(cert_path: &Path) -> Result<x509_cert::Certificate, SbError> {
    let raw = fs::read(cert_path).map_err(|e| file_err(cert_path, format!("cannot read: {e}")))?;
    if raw.starts_with(b"-----BEGIN") {
        x509_cert::Certificate::from_pem(&raw)
    } else {
        x509_cert::Certificate::from_der(&raw)
    }
    .map_err(|e| file_err(cert_path, format!("not an X.509 certificate: {e}")))
}

/// Load an RSA private key (PKCS#8 PEM, encrypted or not, or PKCS#1 PEM) and its X.509
/// certificate (PEM or DER), and check that they belong together.
pub fn load(
    key_path: &Path,
    cert_path: &Path,
    passphrase: Option<&[u8]>,
) -> Result<SbKey, SbError> {
    let text = zeroize::Zeroizing::new(
        fs::read_to_string(key_path)
            .map_err(|e| file_err(key_path, format!("cannot read: {e}")))?,
    );
    let (label, der) = pkcs8::der::pem::decode_vec(text.trim().as_bytes())
        .map_err(|e| file_err(key_path, format!("not a PEM key: {e}")))?;
    let der = zeroize::Zeroizing::new(der);
    if let Some(why) = homestick_image::keys::private_mode_problem(key_path) {
        return Err(file_err(key_path, why));
    }
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
                "--secure-boot-passphrase-file or --secure-boot-passphrase-fd",
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
    let cert = read_cert(cert_path)?;
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
    Ok(SbKey {
        key: RsaSigner::File(Box::new(key)),
        cert,
    })
}

// --- signing ---------------------------------------------------------------------------------

/// `SpcPeImageData` (Authenticode): empty flags and the file "<<<Obsolete>>>", as every
/// signer writes it: `[0] EXPLICIT SpcLink { [2] EXPLICIT SpcString { [0] IMPLICIT BMPString } }`.
#[derive(Clone, Debug, Eq, PartialEq, der::Sequence)]
struct SpcPeImageData {
    flags: der::asn1::BitString,
    file: ContextSpecific<ContextSpecific<ContextSpecific<der::asn1::BmpString>>>,
}

/// `SpcAttributeTypeAndOptionalValue` with SPC_PE_IMAGE_DATA_OBJID.
#[derive(Clone, Debug, Eq, PartialEq, der::Sequence)]
struct SpcAttributeTypeAndOptionalValue {
    value_type: ObjectIdentifier,
    value: SpcPeImageData,
}

/// `DigestInfo`: the Authenticode hash of the image.
#[derive(Clone, Debug, Eq, PartialEq, der::Sequence)]
struct DigestInfo {
    digest_algorithm: AlgorithmIdentifierOwned,
    digest: OctetString,
}

/// `SpcIndirectDataContent`: what the signature is about.
#[derive(Clone, Debug, Eq, PartialEq, der::Sequence)]
struct SpcIndirectDataContent {
    data: SpcAttributeTypeAndOptionalValue,
    message_digest: DigestInfo,
}

const OID_SPC_INDIRECT_DATA_OBJ: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.1.4");
const OID_SPC_PE_IMAGE_DATA_OBJ: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.1.15");

fn explicit<T>(tag: u8, value: T) -> ContextSpecific<T> {
    ContextSpecific {
        tag_number: TagNumber::new(tag),
        tag_mode: TagMode::Explicit,
        value,
    }
}

fn alg(oid: ObjectIdentifier) -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid,
        parameters: Some(der::asn1::Null.into()),
    }
}

fn der_err(e: der::Error) -> SbError {
    SbError::Sign(e.to_string())
}

/// The SpcIndirectDataContent for an image whose Authenticode digest is `digest`.
fn indirect_data(digest: [u8; 32]) -> Result<SpcIndirectDataContent, SbError> {
    let obsolete = der::asn1::BmpString::from_utf8("<<<Obsolete>>>").map_err(der_err)?;
    Ok(SpcIndirectDataContent {
        data: SpcAttributeTypeAndOptionalValue {
            value_type: OID_SPC_PE_IMAGE_DATA_OBJ,
            value: SpcPeImageData {
                flags: der::asn1::BitString::from_bytes(&[]).map_err(der_err)?,
                file: explicit(
                    0,
                    explicit(
                        2,
                        ContextSpecific {
                            tag_number: TagNumber::new(0),
                            tag_mode: TagMode::Implicit,
                            value: obsolete,
                        },
                    ),
                ),
            },
        },
        message_digest: DigestInfo {
            digest_algorithm: alg(ID_SHA_256),
            digest: OctetString::new(digest.to_vec()).map_err(der_err)?,
        },
    })
}

/// The signed attributes: content type SpcIndirectDataContent and the digest of `indirect`'s
/// content (not its tag and length).
fn signed_attributes(
    indirect: &SpcIndirectDataContent,
) -> Result<der::asn1::SetOfVec<x509_cert::attr::Attribute>, SbError> {
    use der::asn1::SetOfVec;
    use x509_cert::attr::Attribute;
    let mut content = indirect.data.to_der().map_err(der_err)?;
    content.extend(indirect.message_digest.to_der().map_err(der_err)?);
    let attr = |oid: ObjectIdentifier, value: der::Any| -> Result<Attribute, SbError> {
        Ok(Attribute {
            oid,
            values: SetOfVec::try_from(vec![value]).map_err(der_err)?,
        })
    };
    SetOfVec::try_from(vec![
        attr(
            ID_CONTENT_TYPE,
            der::Any::encode_from(&OID_SPC_INDIRECT_DATA_OBJ).map_err(der_err)?,
        )?,
        attr(
            ID_MESSAGE_DIGEST,
            der::Any::encode_from(
                &OctetString::new(Sha256::digest(&content).to_vec()).map_err(der_err)?,
            )
            .map_err(der_err)?,
        )?,
    ])
    .map_err(der_err)
}

/// The Authenticode PKCS#7 SignedData (DER) for an image whose Authenticode digest is `digest`.
fn signed_data(digest: [u8; 32], k: &SbKey) -> Result<Vec<u8>, SbError> {
    use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
    use cms::content_info::{CmsVersion, ContentInfo};
    use cms::signed_data::{EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo};
    use der::asn1::SetOfVec;
    let indirect = indirect_data(digest)?;
    let signed_attrs = signed_attributes(&indirect)?;
    let signature = k.sign(&signed_attrs.to_der().map_err(der_err)?)?;
    let tbs = &k.cert.tbs_certificate;
    let signer = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: tbs.issuer.clone(),
            serial_number: tbs.serial_number.clone(),
        }),
        digest_alg: alg(ID_SHA_256),
        signed_attrs: Some(signed_attrs),
        signature_algorithm: alg(RSA_ENCRYPTION),
        signature: OctetString::new(signature).map_err(der_err)?,
        unsigned_attrs: None,
    };
    let sd = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::try_from(vec![alg(ID_SHA_256)]).map_err(der_err)?,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: OID_SPC_INDIRECT_DATA_OBJ,
            econtent: Some(der::Any::encode_from(&indirect).map_err(der_err)?),
        },
        certificates: Some(cms::signed_data::CertificateSet(
            SetOfVec::try_from(vec![CertificateChoices::Certificate(k.cert.clone())])
                .map_err(der_err)?,
        )),
        crls: None,
        signer_infos: cms::signed_data::SignerInfos(
            SetOfVec::try_from(vec![signer]).map_err(der_err)?,
        ),
    };
    ContentInfo {
        content_type: ID_SIGNED_DATA,
        content: der::Any::encode_from(&sd).map_err(der_err)?,
    }
    .to_der()
    .map_err(der_err)
}

/// Sign an unsigned PE image: returns the image with an Authenticode certificate table.
pub fn sign(pe: &[u8], k: &SbKey) -> Result<Vec<u8>, SbError> {
    let l = pe::layout(pe).map_err(|e| SbError::Sign(e.to_string()))?;
    let cert_dir = l.cert_dir();
    if rd32(pe, cert_dir)? != 0 || rd32(pe, cert_dir + 4)? != 0 {
        return Err(SbError::Sign("the image is already signed".into()));
    }
    let pkcs7 = signed_data(pe_digest(pe)?, k)?;
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
