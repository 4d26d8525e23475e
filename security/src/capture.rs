//! One libpcap capture thread per interface, feeding every SIP packet to a callback.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

pub struct Capture {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Capture {
    pub fn start<F>(iface: &str, filter: &str, mut on_frame: F) -> Result<Capture, String>
    where
        F: FnMut(i32, &[u8]) + Send + 'static,
    {
        let why = |e: pcap::Error| format!("cannot capture on interface '{iface}': {e}");
        let mut cap = pcap::Capture::from_device(iface)
            .map_err(why)?
            .snaplen(65535)
            .timeout(100)
            .immediate_mode(true)
            .buffer_size(16 << 20)
            .open()
            .map_err(why)?
            // libpcap's timeout never fires on an idle interface, so poll the fd ourselves.
            .setnonblock()
            .map_err(why)?;
        cap.filter(filter, true)
            .map_err(|e| format!("capture filter '{filter}' is invalid: {e}"))?;
        let linktype = cap.get_datalink().0;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let name = iface.to_owned();
        let thread = std::thread::Builder::new()
            .name(format!("capture-{iface}"))
            .spawn(move || {
                use std::os::fd::AsRawFd;
                let fd = cap.as_raw_fd();
                while !flag.load(Ordering::Relaxed) {
                    let mut pfd = libc::pollfd {
                        fd,
                        events: libc::POLLIN,
                        revents: 0,
                    };
                    // SAFETY: one valid pollfd for the capture's descriptor, which outlives the call.
                    if unsafe { libc::poll(&mut pfd, 1, 200) } <= 0 {
                        continue;
                    }
                    for _ in 0..10_000 {
                        match cap.next_packet() {
                            Ok(p) => on_frame(linktype, p.data),
                            Err(pcap::Error::TimeoutExpired) => break,
                            Err(e) => {
                                tracing::error!(interface = %name, error = %e, "capture stopped");
                                return;
                            }
                        }
                    }
                }
            })
            .map_err(|e| format!("cannot start capture thread: {e}"))?;
        tracing::info!(interface = iface, filter, "capturing");
        Ok(Capture {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The box's own addresses (never banned).
pub fn own_addresses() -> Vec<std::net::IpAddr> {
    pcap::Device::list()
        .map(|devs| {
            devs.iter()
                .flat_map(|d| d.addresses.iter().map(|a| a.addr))
                .collect()
        })
        .unwrap_or_default()
}
