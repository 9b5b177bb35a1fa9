//! The live side of a plan as the planner reads it: a table of services in
//! key order, each with its attributes and its dests in address order.
//! An [`IpvsState`] is one (the one-shot CLI, `ipvsadm -S` files, tests);
//! the daemon's compact copy of the kernel's table (`reconcile::live::Table`)
//! is another, so that no daemon pass holds the whole kernel table as an
//! [`IpvsState`] (about 144 bytes a dest, against about 70).
//!
//! Must not: own or copy anything; a view only borrows.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use crate::model::{DestAttrs, IpvsState, Service, ServiceAttrs, ServiceKey};

/// A live table, read-only.
pub trait LiveView {
    /// One service of the table.
    type Service<'a>: ServiceView<'a>
    where
        Self: 'a;

    /// Every service, in key order.
    fn services(&self) -> impl Iterator<Item = (&ServiceKey, Self::Service<'_>)>;

    /// The service `key`, if the table has it.
    fn service(&self, key: &ServiceKey) -> Option<Self::Service<'_>>;
}

/// One live service, read-only.
pub trait ServiceView<'a>: Copy {
    fn attrs(self) -> &'a ServiceAttrs;

    /// Its dests, in address order.
    fn dests(self) -> impl Iterator<Item = (&'a SocketAddr, &'a DestAttrs)>;

    fn dest_count(self) -> usize;

    /// The dest at `addr`, if the service has it.
    fn dest(self, addr: &SocketAddr) -> Option<&'a DestAttrs>;

    /// Whether a dest takes new connections (weight above 0).
    fn serves(self) -> bool {
        self.dests().any(|(_, d)| d.weight > 0)
    }
}

impl LiveView for IpvsState {
    type Service<'a> = &'a Service;

    fn services(&self) -> impl Iterator<Item = (&ServiceKey, &Service)> {
        self.services.iter()
    }

    fn service(&self, key: &ServiceKey) -> Option<&Service> {
        self.services.get(key)
    }
}

impl<'a> ServiceView<'a> for &'a Service {
    fn attrs(self) -> &'a ServiceAttrs {
        &self.attrs
    }

    fn dests(self) -> impl Iterator<Item = (&'a SocketAddr, &'a DestAttrs)> {
        self.dests.iter().map(|(addr, d)| (addr, &d.attrs))
    }

    fn dest_count(self) -> usize {
        self.dests.len()
    }

    fn dest(self, addr: &SocketAddr) -> Option<&'a DestAttrs> {
        self.dests.get(addr).map(|d| &d.attrs)
    }
}

impl<T: LiveView + ?Sized> LiveView for &T {
    type Service<'a>
        = T::Service<'a>
    where
        Self: 'a;

    fn services(&self) -> impl Iterator<Item = (&ServiceKey, T::Service<'_>)> {
        (**self).services()
    }

    fn service(&self, key: &ServiceKey) -> Option<T::Service<'_>> {
        (**self).service(key)
    }
}

/// The services of `scope` that `live` has (`plan::plan_within`'s live
/// side), without a copy of them.
pub struct Within<'l, L: ?Sized> {
    pub live: &'l L,
    pub scope: &'l BTreeSet<ServiceKey>,
}

impl<L: LiveView + ?Sized> LiveView for Within<'_, L> {
    type Service<'a>
        = L::Service<'a>
    where
        Self: 'a;

    fn services(&self) -> impl Iterator<Item = (&ServiceKey, L::Service<'_>)> {
        self.scope
            .iter()
            .filter_map(|k| self.live.service(k).map(|s| (k, s)))
    }

    fn service(&self, key: &ServiceKey) -> Option<L::Service<'_>> {
        self.live.service(key).filter(|_| self.scope.contains(key))
    }
}
