//! The features' state, kept by the engine (`Engine<Features>`), and the
//! accessors through which each feature reaches its own part.

use crate::features::accounting::store::{Accounting, Meta};
use crate::features::b2bua::dialogs::Calls as B2bCalls;
use crate::features::fraud::Guard;
use crate::features::trunk_registration::status::Registrations;

/// The engine of this daemon: the call layer with these features.
pub type Engine = crate::call::Engine<Features>;
/// A listed call with what accounting keeps of it.
pub type Call = crate::call::Call<Box<Meta>>;

/// The state of the features that keep any. A feature with state of its own
/// adds a field here and an accessor below; its hooks go in `hooks`.
#[derive(Default)]
pub struct Features {
    /// Toll-fraud protection: refusals, our dialogs, outbound calls, spend.
    fraud: Guard,
    /// CDRs and prepaid balances.
    accounting: Accounting,
    /// Calls of the B2BUA mode, under both their Call-IDs.
    b2b: B2bCalls,
    /// Outbound registrations to trunks.
    trunk_regs: Registrations,
    /// Trunk hosts that are domain names, resolved.
    dns: crate::features::dns::Names,
    /// NAT traversal of the proxy: NATed bindings, call media relays.
    nat_proxy: crate::features::nat_proxy::NatProxy,
    forwarding: crate::features::forwarding::Store,
    /// Copies of the SIP messages to a HOMER collector.
    hep: crate::features::hep::Export,
    /// The location shared with other boxes (PostgreSQL).
    cluster: crate::features::cluster::Cluster,
    /// Blocked and inbound-routed calls, ring groups' calls.
    inbound: crate::features::inbound::Stats,
    /// B2BUA transfers in progress.
    transfers: crate::features::b2bua::transfer::Transfers,
    /// Parked calls (B2BUA).
    parking: crate::features::b2bua::parking::Lots,
    /// Dialog-event subscriptions (busy-lamp fields).
    presence: crate::features::presence::Presence,
    /// Calls answered by the box itself: conferences, voicemail.
    media: crate::features::media_service::MediaServices,
}

impl Engine {
    pub fn cluster(&self) -> &crate::features::cluster::Cluster {
        &self.features().cluster
    }

    pub fn hep(&self) -> &crate::features::hep::Export {
        &self.features().hep
    }

    pub fn fraud(&self) -> &Guard {
        &self.features().fraud
    }

    pub fn accounting(&self) -> &Accounting {
        &self.features().accounting
    }

    pub fn b2b_calls(&self) -> &B2bCalls {
        &self.features().b2b
    }

    pub fn trunk_regs(&self) -> &Registrations {
        &self.features().trunk_regs
    }

    pub fn dns(&self) -> &crate::features::dns::Names {
        &self.features().dns
    }

    pub fn nat_proxy(&self) -> &crate::features::nat_proxy::NatProxy {
        &self.features().nat_proxy
    }

    pub fn forwarding(&self) -> &crate::features::forwarding::Store {
        &self.features().forwarding
    }

    pub fn inbound(&self) -> &crate::features::inbound::Stats {
        &self.features().inbound
    }

    pub fn transfers(&self) -> &crate::features::b2bua::transfer::Transfers {
        &self.features().transfers
    }

    pub fn parking(&self) -> &crate::features::b2bua::parking::Lots {
        &self.features().parking
    }

    pub fn presence(&self) -> &crate::features::presence::Presence {
        &self.features().presence
    }

    pub fn media(&self) -> &crate::features::media_service::MediaServices {
        &self.features().media
    }
}
