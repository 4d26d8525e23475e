//! Certificates for tests: a CA of its own and a server certificate it signs.

/// A CA named `name` and a server certificate for `names` signed by it:
/// (CA PEM, server certificate PEM, server key PEM).
pub fn test_ca_for(name: &str, names: &[&str]) -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name.push(rcgen::DnType::CommonName, name);
    let ca_cert = ca.self_signed(&ca_key).expect("CA");
    let key = rcgen::KeyPair::generate().expect("key");
    let names = names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    let server = rcgen::CertificateParams::new(names).expect("params");
    let cert = server
        .signed_by(&key, &ca_cert, &ca_key)
        .expect("server certificate");
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}
