//! A cluster peer as the settings name it (`cluster.peers`).

/// A configured peer: `name@host:port` → its node name and address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAddr {
    /// `name@host`, as the peer names itself.
    pub name: String,
    /// `host:port` of its cluster listener.
    pub address: String,
}

impl PeerAddr {
    pub fn parse(s: &str) -> Option<Self> {
        let (name, host_port) = s.split_once('@')?;
        let (host, port) = host_port.rsplit_once(':')?;
        port.parse::<u16>().ok()?;
        (!name.is_empty() && !host.is_empty()).then(|| Self {
            name: format!("{name}@{host}"),
            address: host_port.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_parse_from_name_at_host_colon_port() {
        assert_eq!(
            PeerAddr::parse("ocr1@10.0.0.5:4369"),
            Some(PeerAddr {
                name: "ocr1@10.0.0.5".into(),
                address: "10.0.0.5:4369".into()
            })
        );
        for bad in ["ocr1@10.0.0.5", "10.0.0.5:4369", "@h:1", "a@:1", "a@h:port"] {
            assert_eq!(PeerAddr::parse(bad), None, "{bad}");
        }
    }
}
