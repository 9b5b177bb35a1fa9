//! ARP mode's VIP interface (`--vip-mode arp`): [`ArpVips`], the shared
//! link of [`netlink::arp_link`] as a [`VipInterface`], plus the announcer,
//! a thread that sends the gratuitous ARP and neighbour advertisement
//! frames of [`crate::vip::announce`] through a packet socket when a VIP
//! is added (and every `--arp-refresh`, if set).
//!
//! Announcing is best effort, as in keepalived: a frame the kernel refuses
//! is logged, never a failed pass. The packet socket is opened at start,
//! so a missing `CAP_NET_RAW` stops the start instead of every
//! announcement failing quietly.
//!
//! Must not: decide what is ours or what to change (`vip` does), or send
//! anything but announcements of VIPs on the interface that are ours.

use std::collections::BTreeSet;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tracing::{debug, info, warn};

use super::vips::VipInterface;
use crate::netlink::arp_link::{Added, ArpLink};
use crate::plan::Ownership;
use crate::vip::announce::{self, Frame, Mac, Schedule};
use crate::vip::{self, Present};

/// The shared interface and its announcer.
pub struct ArpVips {
    link: ArpLink,
    ownership: Ownership,
    announcer: Sender<Note>,
}

/// What the announcer is told.
enum Note {
    /// The link (index, hardware address) and the VIPs of ours on it now.
    Current(u32, Mac, BTreeSet<IpAddr>),
    /// This VIP was just added.
    Added(IpAddr),
    /// This VIP was just removed.
    Removed(IpAddr),
}

impl ArpVips {
    /// Opens the existing interface `name` and the packet socket, and
    /// starts the announcer; `refresh`: announce every VIP again this
    /// often (`--arp-refresh`).
    pub fn open(name: &str, ownership: Ownership, refresh: Option<Duration>) -> Result<ArpVips> {
        let link = ArpLink::open(name)?;
        let sock = PacketSocket::open().with_context(|| {
            format!("--vip-mode arp: opening a packet socket to announce the VIPs on {name} (needs CAP_NET_RAW)")
        })?;
        let (tx, rx) = mpsc::channel();
        let iface = name.to_string();
        std::thread::Builder::new()
            .name("clusterf-announce".into())
            .spawn(move || announce_loop(&sock, &iface, rx, Schedule::new(refresh)))
            .context("starting the announcer thread")?;
        Ok(ArpVips {
            link,
            ownership,
            announcer: tx,
        })
    }

    fn tell(&self, note: Note) {
        // The announcer ends only with the daemon.
        let _ = self.announcer.send(note);
    }
}

impl VipInterface for ArpVips {
    fn name(&self) -> &str {
        self.link.name()
    }

    fn read(&mut self) -> Result<BTreeSet<IpAddr>> {
        Ok(self.read_present()?.ours)
    }

    fn read_present(&mut self) -> Result<Present> {
        let addrs = self.link.read()?;
        let present = vip::split(&addrs.marked, &addrs.unmarked, &self.ownership);
        let (index, mac) = (self.link.index(), self.link.mac());
        self.tell(Note::Current(index, mac, present.ours.clone()));
        Ok(present)
    }

    fn add(&mut self, vip: IpAddr) -> Result<()> {
        match self.link.add(vip)? {
            Added::Added => {
                info!(
                    vip = %vip,
                    "announcing {vip} on {} ({}, {} times {}s apart)",
                    self.link.name(),
                    kind(vip),
                    announce::ROUNDS,
                    announce::GAP.as_secs()
                );
                self.tell(Note::Added(vip));
            }
            Added::Existed => warn!(
                vip = %vip,
                "{} appeared on {} while clusterf added it: not clusterf's, left alone",
                vip::cidr(vip),
                self.link.name()
            ),
        }
        Ok(())
    }

    fn remove(&mut self, vip: IpAddr) -> Result<()> {
        // Not announced again from now on, even if the delete fails.
        self.tell(Note::Removed(vip));
        self.link.remove(vip)
    }
}

/// The announcer: sleeps until the schedule says, sends, until the
/// daemon drops its end.
fn announce_loop(sock: &PacketSocket, iface: &str, rx: Receiver<Note>, mut schedule: Schedule) {
    let start = Instant::now();
    let mut link: Option<(u32, Mac)> = None;
    loop {
        let now = start.elapsed();
        let wait = schedule
            .next_at()
            .map_or(Duration::from_secs(3600), |at| at.saturating_sub(now));
        match rx.recv_timeout(wait) {
            Ok(Note::Current(index, mac, vips)) => {
                link = Some((index, mac));
                schedule.current(vips, start.elapsed());
            }
            Ok(Note::Added(vip)) => schedule.added(vip, start.elapsed()),
            Ok(Note::Removed(vip)) => schedule.removed(vip),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let due = schedule.due(start.elapsed());
        let Some((index, mac)) = link else { continue };
        for vip in due {
            send_all(sock, iface, index, &announce::frames(mac, vip), vip);
        }
    }
}

fn send_all(sock: &PacketSocket, iface: &str, index: u32, frames: &[Frame], vip: IpAddr) {
    for f in frames {
        if let Err(e) = sock.send(index, f) {
            warn!(vip = %vip, "announcing {vip} on {iface} ({}): {e}", kind(vip));
            return;
        }
    }
    debug!(vip = %vip, "announced {vip} on {iface} ({})", kind(vip));
}

fn kind(vip: IpAddr) -> &'static str {
    match vip {
        IpAddr::V4(_) => "gratuitous ARP",
        IpAddr::V6(_) => "unsolicited neighbour advertisement",
    }
}

/// A send-only `AF_PACKET` socket (protocol 0: it receives nothing).
struct PacketSocket(OwnedFd);

impl PacketSocket {
    fn open() -> io::Result<PacketSocket> {
        // SAFETY: plain socket(2); the fd is checked and then owned.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh fd that nothing else owns.
        Ok(PacketSocket(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Sends one whole frame (Ethernet header included) out of link
    /// `index`.
    fn send(&self, index: u32, frame: &Frame) -> io::Result<()> {
        // SAFETY: sockaddr_ll is plain data; all-zero is valid.
        let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        to.sll_family = libc::AF_PACKET as u16;
        to.sll_protocol = frame.ethertype.to_be();
        to.sll_ifindex = i32::try_from(index).map_err(io::Error::other)?;
        to.sll_halen = 6;
        to.sll_addr[..6].copy_from_slice(&frame.bytes[..6]);
        // SAFETY: the frame's bytes and the address, both alive for the
        // call, with their lengths.
        let n = unsafe {
            libc::sendto(
                self.0.as_raw_fd(),
                frame.bytes.as_ptr().cast(),
                frame.bytes.len(),
                0,
                (&raw const to).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        match usize::try_from(n) {
            Ok(n) if n == frame.bytes.len() => Ok(()),
            Ok(n) => Err(io::Error::other(format!(
                "short send: {n} of {} bytes",
                frame.bytes.len()
            ))),
            Err(_) => Err(io::Error::last_os_error()),
        }
    }
}
