//! Which pages a group may open. NACM in besip-netconfd decides every read
//! and write; this only keeps pages out of reach that would show nothing
//! but refusals (the built-in policy: users and access control are the
//! admin group's alone), so an operator gets 403 at the door.

use besip_core::access::Group;

/// Page paths (schema node names from the top) only admins open.
const ADMIN_ONLY: &[&[&str]] = &[&["system", "user"], &["nacm"]];

pub fn admin_only(path: &[&str]) -> bool {
    ADMIN_ONLY
        .iter()
        .any(|p| path.len() >= p.len() && path[..p.len()] == **p)
}

pub fn may_open(group: Group, path: &[&str]) -> bool {
    group == Group::Admin || !admin_only(path)
}

/// The message a monitor gets for any change.
pub const READ_ONLY: &str =
    "Your account is in the monitor group: it may read the configuration but not change it. Nothing was saved.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_the_admins_page() {
        assert!(!may_open(Group::Operator, &["system", "user"]));
        assert!(!may_open(Group::Monitor, &["system", "user", "bob"]));
        assert!(may_open(Group::Admin, &["system", "user"]));
        assert!(may_open(Group::Operator, &["pbx", "extension"]));
        assert!(may_open(Group::Operator, &["system"]));
    }
}
