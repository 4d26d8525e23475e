//! Caller ID settings (YANG /pbx/extension/caller-id-*, /pbx/trunk/
//! caller-id-number and send-pai, /pbx/feature-codes/anonymous,
//! /pbx/phonebook) and speed dials (/pbx/speed-dial).

use std::collections::HashMap;

use besip_core::model::pbx::Pbx;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    pub number: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrunkIdentity {
    pub number: Option<String>,
    pub send_pai: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallerId {
    /// Extension number → its outbound caller ID (name falls back to display-name).
    pub extensions: HashMap<String, Identity>,
    pub trunks: HashMap<String, TrunkIdentity>,
    /// The privacy prefix (*67); None when feature codes are off.
    pub anonymous: Option<String>,
    /// Caller number → display name.
    pub phonebook: HashMap<String, String>,
    /// Speed dial code → number.
    pub speed_dials: HashMap<String, String>,
}

impl CallerId {
    pub fn from_model(pbx: &Pbx) -> CallerId {
        CallerId {
            extensions: pbx
                .extension
                .iter()
                .map(|e| {
                    let id = Identity {
                        number: e.caller_id_number.clone(),
                        name: e.caller_id_name.clone().or_else(|| e.display_name.clone()),
                    };
                    (e.number.clone(), id)
                })
                .collect(),
            trunks: pbx
                .trunk
                .iter()
                .map(|t| {
                    let id = TrunkIdentity {
                        number: t.caller_id_number.clone(),
                        send_pai: t.send_pai,
                    };
                    (t.name.clone(), id)
                })
                .collect(),
            anonymous: pbx
                .feature_codes
                .enabled
                .then(|| pbx.feature_codes.anonymous.clone()),
            phonebook: pbx
                .phonebook
                .iter()
                .map(|p| (p.number.clone(), p.name.clone()))
                .collect(),
            speed_dials: pbx
                .speed_dial
                .iter()
                .map(|s| (s.code.clone(), s.number.clone()))
                .collect(),
        }
    }
}
