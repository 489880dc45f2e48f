//! The CustomResourceDefinition as `offer-cancel-operator crd` prints it
//! (and `crds/` holds it), generated from the types.

use kube::CustomResourceExt;

use super::types::OfferCancellation;

/// The CRD as YAML, as `offer-cancel-operator crd` prints it.
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    let yaml = serde_yaml::to_string(&OfferCancellation::crd())?;
    Ok(quote_date_like_scalars(&yaml))
}

/// serde_yaml writes `2017-10-31` bare, which is a YAML 1.2 string but a
/// YAML 1.1 timestamp: kubectl's YAML reader would turn the default into
/// `2017-10-31T00:00:00Z`. Quote such scalars so every reader sees a string.
pub(crate) fn quote_date_like_scalars(yaml: &str) -> String {
    let date_like = |v: &str| {
        let b = v.as_bytes();
        b.len() == 10
            && b[4] == b'-'
            && b[7] == b'-'
            && b.iter()
                .enumerate()
                .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
    };
    let mut out = String::with_capacity(yaml.len() + 16);
    // The indentation of the key whose block scalar (`|`, `>`) is being
    // read: its lines are text, never rewritten.
    let mut block: Option<usize> = None;
    for line in yaml.lines() {
        let indent = line.len() - line.trim_start().len();
        if block.is_some_and(|key| line.trim().is_empty() || indent > key) {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        block = None;
        match line.rsplit_once(": ") {
            Some((key, value)) if date_like(value) => {
                out.push_str(&format!("{key}: '{value}'"));
            }
            Some((_, value)) if value.starts_with('|') || value.starts_with('>') => {
                block = Some(indent);
                out.push_str(line);
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}
