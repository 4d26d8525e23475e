//! besip-monitord: RTP capture, RFC 3550 statistics, ITU-T G.107 E-model MOS.

pub mod analyzer;
pub mod burst;
pub mod codec;
pub mod config;
pub mod correlate;
pub mod daemon;
pub mod decode;
pub mod emodel;
pub mod offline;
pub mod reassembly;
pub mod report;
pub mod rtcp;
pub mod rtp;
pub mod service;
pub mod sip;
pub mod sites;
pub mod store;
pub mod web;
