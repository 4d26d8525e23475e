//! Network devices named in nftables scripts: besip-pbxd's kernel
//! forwarding and besip-secd's bans at ingress hook chains per device, and
//! both must agree on what a safe name is and what its chain is called.

/// Whether `name` looks like a Linux device name (IFNAMSIZ, the usual
/// characters), so it can stand quoted in an nft script.
pub fn safe_device(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 16
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
}

/// The ingress chain of `device`: `in_` and the name, other characters as `_`.
pub fn ingress_chain(device: &str) -> String {
    format!(
        "in_{}",
        device.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_that_could_break_a_script_are_refused() {
        assert!(safe_device("eth0") && safe_device("br-lan") && safe_device("pppoe-wan"));
        assert!(!safe_device("lo\"; flush ruleset"));
        assert!(!safe_device(""));
        assert!(!safe_device("a-name-longer-than-15"));
        assert_eq!(ingress_chain("br-lan"), "in_br_lan");
    }
}
