//! Kernel refusals: the errno values clusterf tells apart, their text, the
//! [`KernelError`] a refused request or dump returns, and the line that
//! names the object of a refused op.
//!
//! Invariant: pure; no sockets. Below `dump`, `pipeline` and `client`,
//! which all report refusals through it.

use crate::model::Op;

/// Hint for EPERM.
pub const NO_PERMISSION: &str = "run as root or grant CAP_NET_ADMIN";

pub const EPERM: i32 = 1;
pub const ENOENT: i32 = 2;
pub const ESRCH: i32 = 3;
pub const EEXIST: i32 = 17;
pub const EINVAL: i32 = 22;
pub const EAFNOSUPPORT: i32 = 97;

/// One line for a refused op: the object, then why.
pub fn describe_failure(op: &Op, errno: i32, ext_msg: Option<&str>) -> String {
    let why = match (errno, op) {
        (EEXIST, _) => "already exists".to_string(),
        (ESRCH, _) => "no such service".to_string(),
        (ENOENT, Op::AddService { attrs, .. } | Op::EditService { attrs, .. }) => format!(
            "scheduler {:?} is not available in this kernel (no module ip_vs_{})",
            attrs.scheduler, attrs.scheduler
        ),
        (ENOENT, Op::DelService { .. }) => "no such service".to_string(),
        (ENOENT, _) => "no such dest".to_string(),
        (EPERM, _) => format!("operation not permitted: {NO_PERMISSION}"),
        (EAFNOSUPPORT, _) => "address family not supported by the kernel's ipvs".to_string(),
        (e, _) => errno_text(e),
    };
    match ext_msg {
        Some(m) if !m.is_empty() => format!("{}: {why} ({m})", op.object()),
        _ => format!("{}: {why}", op.object()),
    }
}

/// `strerror`, lowercased, without Rust's ` (os error N)`.
pub fn errno_text(errno: i32) -> String {
    let s = std::io::Error::from_raw_os_error(errno).to_string();
    let s = match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    };
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_lowercase().chain(c).collect(),
        None => format!("error {errno}"),
    }
}

/// A refusal by the kernel: positive errno and the extended-ack message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelError {
    pub errno: i32,
    pub ext_msg: Option<String>,
}

impl std::fmt::Display for KernelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.errno == EPERM {
            return write!(f, "operation not permitted: {NO_PERMISSION}");
        }
        write!(f, "{}", errno_text(self.errno))?;
        if let Some(m) = &self.ext_msg {
            write!(f, " ({m})")?;
        }
        Ok(())
    }
}

impl std::error::Error for KernelError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DestAttrs, Method, ServiceAttrs, ServiceKey};

    fn key(s: &str) -> ServiceKey {
        s.parse().unwrap()
    }

    #[test]
    fn failures_name_the_object() {
        let service = key("tcp://10.107.107.107:1337");
        let add = Op::AddDest {
            service,
            dest: "10.3.107.1:1337".parse().unwrap(),
            attrs: DestAttrs::new(Method::Masq, 10),
        };
        assert_eq!(
            describe_failure(&add, EEXIST, None),
            "dest 10.3.107.1:1337 of tcp://10.107.107.107:1337: already exists"
        );
        assert_eq!(
            describe_failure(&add, ESRCH, None),
            "dest 10.3.107.1:1337 of tcp://10.107.107.107:1337: no such service"
        );
        let svc = Op::AddService {
            service,
            attrs: ServiceAttrs::with_scheduler("nope"),
        };
        assert_eq!(
            describe_failure(&svc, ENOENT, None),
            "service tcp://10.107.107.107:1337: scheduler \"nope\" is not available in this kernel (no module ip_vs_nope)"
        );
        assert_eq!(
            describe_failure(&svc, 12, None),
            "service tcp://10.107.107.107:1337: cannot allocate memory"
        );
        assert!(describe_failure(&svc, EPERM, None).ends_with("CAP_NET_ADMIN"));
    }
}
