//! Just enough DER to name a certificate's subject: its common name (the node name), its
//! organization (the role the CA gave it) and its end of validity, for authorization and for
//! the log lines of refused peers. The certificate itself is verified by rustls (webpki);
//! this reader only looks at the fields, and since a refused peer's certificate is hostile
//! input too, it never panics and never allocates more than the field it returns.

/// OID 2.5.4.3 (commonName), DER content bytes.
const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
/// OID 2.5.4.10 (organizationName).
const OID_O: &[u8] = &[0x55, 0x04, 0x0a];

/// What a certificate says about its subject.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subject {
    /// The subject's common name.
    pub common_name: Option<String>,
    /// The subject's organization.
    pub organization: Option<String>,
    /// The end of validity as written (`YYMMDDhhmmssZ` or `YYYYMMDDhhmmssZ`).
    pub not_after: Option<String>,
}

/// One DER element: (tag, content, rest of the input).
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 3 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The elements of a constructed value's content.
fn elements(mut content: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let (tag, value, rest) = tlv(content)?;
        content = rest;
        Some((tag, value))
    })
}

fn text(tag: u8, value: &[u8]) -> Option<String> {
    // UTF8String, PrintableString, IA5String, T61String, BMPString is not used by rcgen.
    match tag {
        0x0c | 0x13 | 0x16 | 0x14 => Some(String::from_utf8_lossy(value).chars().take(200).collect()),
        _ => None,
    }
}

/// Reads the subject and validity of a DER certificate; `None` when it is not one.
pub fn subject(cert_der: &[u8]) -> Option<Subject> {
    let (0x30, cert, _) = tlv(cert_der)? else { return None };
    let (0x30, tbs, _) = tlv(cert)? else { return None };
    let mut fields = elements(tbs).peekable();
    // [0] version, optional.
    if fields.peek().is_some_and(|(tag, _)| *tag == 0xa0) {
        fields.next();
    }
    let _serial = fields.next()?;
    let _signature = fields.next()?;
    let _issuer = fields.next()?;
    let (0x30, validity) = fields.next()? else { return None };
    let (0x30, name) = fields.next()? else { return None };
    let mut out = Subject::default();
    if let Some((tag, t)) = elements(validity).nth(1) {
        if tag == 0x17 || tag == 0x18 {
            out.not_after = Some(String::from_utf8_lossy(t).chars().take(20).collect());
        }
    }
    for (tag, set) in elements(name) {
        if tag != 0x31 {
            return None;
        }
        for (tag, atv) in elements(set) {
            if tag != 0x30 {
                return None;
            }
            let mut parts = elements(atv);
            let (Some((0x06, oid)), Some((vtag, value))) = (parts.next(), parts.next()) else { continue };
            if oid == OID_CN && out.common_name.is_none() {
                out.common_name = text(vtag, value);
            } else if oid == OID_O && out.organization.is_none() {
                out.organization = text(vtag, value);
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn cert(cn: &str, o: &str) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(vec![cn.to_string()]).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, cn);
        params.distinguished_name.push(rcgen::DnType::OrganizationName, o);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn reads_the_subject_of_a_certificate() {
        let s = subject(&cert("edge-2", "hcontainer-node")).expect("a certificate");
        assert_eq!(s.common_name.as_deref(), Some("edge-2"));
        assert_eq!(s.organization.as_deref(), Some("hcontainer-node"));
        assert!(s.not_after.is_some());
    }

    #[test]
    fn damaged_certificates_give_none_or_a_subject_never_a_panic() {
        let good = cert("n", "hcontainer-observer");
        for cut in 0..good.len() {
            let _ = subject(&good[..cut]);
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(509);
        for _ in 0..20_000 {
            let mut c = good.clone();
            for _ in 0..rng.random_range(1..8) {
                let i = rng.random_range(0..c.len());
                c[i] = rng.random();
            }
            let _ = subject(&c);
        }
        assert_eq!(subject(&[]), None);
        assert_eq!(subject(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
    }
}
