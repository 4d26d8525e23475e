//! A live libpcap capture on one interface in its own thread, feeding every
//! frame to a callback; shared by besip-secd and besip-monitord. Stops (and
//! joins its thread) when dropped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Kernel ring of one capture. libpcap's (and tcpdump's) default: room for
/// thousands of SIP packets while the thread is busy. The ring is locked
/// memory of the process (mapped twice the requested size with snaplen
/// 65535), so 16 MiB cost secd and monitord 32 MiB of RSS each on a router.
const CAPTURE_BUFFER_BYTES: i32 = 2 << 20;

pub struct LiveCapture {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl LiveCapture {
    /// Open `iface` with the BPF `filter` and call `on_frame(linktype, timestamp, frame)`
    /// for every packet, timestamp in seconds since the epoch.
    pub fn start<F>(iface: &str, filter: &str, mut on_frame: F) -> Result<LiveCapture, String>
    where
        F: FnMut(i32, f64, &[u8]) + Send + 'static,
    {
        let why = |e: pcap::Error| format!("cannot capture on interface '{iface}': {e}");
        let mut cap = pcap::Capture::from_device(iface)
            .map_err(why)?
            .snaplen(65535)
            .timeout(100)
            .immediate_mode(true)
            .buffer_size(CAPTURE_BUFFER_BYTES)
            .open()
            .map_err(why)?
            // libpcap's own timeout never fires on an idle interface (TPACKET_V3),
            // so the thread polls the descriptor itself and can notice a stop.
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
                    // SAFETY: one valid pollfd for the capture's descriptor, which lives as long as `cap`.
                    if unsafe { libc::poll(&mut pfd, 1, 200) } <= 0 {
                        continue;
                    }
                    // Drain what is buffered (bounded so a flood cannot starve the stop flag).
                    for _ in 0..10_000 {
                        match cap.next_packet() {
                            Ok(p) => {
                                let ts =
                                    p.header.ts.tv_sec as f64 + p.header.ts.tv_usec as f64 / 1e6;
                                on_frame(linktype, ts, p.data);
                            }
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
        Ok(LiveCapture {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for LiveCapture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
