//! besip-image: the BESIP box as a product. OpenWrt `.ipk` packages and a
//! usign-signed opkg feed (`ipk`, `feed`, `usign`, `catalog`), the same
//! packages as apk-tools v3 `.apk` with a signed `packages.adb` (`apk`) and a bootable
//! x86_64 disk image (`disk`), built from our static musl multi-call binary,
//! Debian's kernel and busybox.

pub mod apk;
pub mod catalog;
pub mod disk;
pub mod feed;
pub mod ipk;
pub mod usign;
