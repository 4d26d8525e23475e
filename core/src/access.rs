//! The built-in access groups of besip-system users (`user-group` in
//! yang/besip-system.yang), shared by besip-netconfd and the web panel so
//! both read a user's rights the same way.

/// A user's built-in group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// Everything, including users and access control.
    Admin,
    /// All configuration and operations except users and access control.
    Operator,
    /// Read only.
    Monitor,
}

impl Group {
    /// The YANG enum name; `None` for anything else.
    pub fn parse(name: &str) -> Option<Group> {
        match name {
            "admin" => Some(Group::Admin),
            "operator" => Some(Group::Operator),
            "monitor" => Some(Group::Monitor),
            _ => None,
        }
    }

    /// An unknown group name gets the least rights.
    pub fn parse_or_monitor(name: &str) -> Group {
        Group::parse(name).unwrap_or(Group::Monitor)
    }

    pub fn name(self) -> &'static str {
        match self {
            Group::Admin => "admin",
            Group::Operator => "operator",
            Group::Monitor => "monitor",
        }
    }

    /// May change configuration or run actions that change the box
    /// (capture control, erasing reports, module RPCs).
    pub fn may_write(self) -> bool {
        self != Group::Monitor
    }
}

#[cfg(test)]
mod tests {
    use super::Group;

    #[test]
    fn names_round_trip_and_unknown_is_least_privilege() {
        for g in [Group::Admin, Group::Operator, Group::Monitor] {
            assert_eq!(Group::parse(g.name()), Some(g));
        }
        assert_eq!(Group::parse("root"), None);
        assert_eq!(Group::parse_or_monitor("root"), Group::Monitor);
        assert!(!Group::Monitor.may_write() && Group::Operator.may_write());
    }
}
