//! What the request routing decides for a new request (admission returns
//! its refusals in the same terms).

use crate::call::Target;
use crate::features::fraud::Refusal;
use crate::sip::Message;

pub enum Decision {
    Reply(u16, &'static str, Vec<(&'static str, String)>),
    Forward(Vec<Target>),
    Response(Message),
    /// A route naming a dispatcher set: (set, number after strip/prepend).
    Dispatch(String, String),
    /// Refused by the toll-fraud protection.
    Refuse(Refusal),
    /// A route to a trunk whose host is a domain name: (trunk, number).
    ResolvedTrunk(String, String),
    /// Answered by the box itself (conference, voicemail).
    Local(crate::features::media_service::Service),
}
