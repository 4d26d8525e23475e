//! A live libpcap capture on one interface in its own thread, feeding every
//! frame to a callback; shared by besip-secd and besip-monitord. Stops (and
//! joins its thread) when dropped.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
    /// Packets the kernel dropped for this capture (libpcap's ps_drop and
    /// ps_ifdrop), read about once a second by the capture thread.
    kernel_dropped: Arc<AtomicU64>,
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
        let kernel_dropped = Arc::new(AtomicU64::new(0));
        let dropped = kernel_dropped.clone();
        let thread = std::thread::Builder::new()
            .name(format!("capture-{iface}"))
            .spawn(move || {
                use std::os::fd::AsRawFd;
                let fd = cap.as_raw_fd();
                let mut stats_read = std::time::Instant::now();
                while !flag.load(Ordering::Relaxed) {
                    if stats_read.elapsed() >= std::time::Duration::from_secs(1) {
                        stats_read = std::time::Instant::now();
                        if let Ok(st) = cap.stats() {
                            let lost = u64::from(st.dropped) + u64::from(st.if_dropped);
                            dropped.store(lost, Ordering::Relaxed);
                        }
                    }
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
            kernel_dropped,
        })
    }

    /// Packets the kernel dropped for this capture so far (updated about
    /// once a second).
    pub fn kernel_dropped(&self) -> u64 {
        self.kernel_dropped.load(Ordering::Relaxed)
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
