//! What crosses the cluster link, and how it is encoded: every payload is a `Frame`, one
//! protocol-version byte followed by the value in postcard. Decoding never panics: a frame
//! from a node of another protocol version, or one that does not parse, decodes to an error
//! the receiving actor logs and drops (ractor's `blanket_serde` path would `unwrap`).
//!
//! Messages match by variant name across nodes, so the membership actor's `Hello` is kept
//! the same in every version: that is how two nodes find out they disagree.

use ractor::{BytesConvertable, RpcReplyPort};
use ractor_cluster::RactorClusterMessage;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::gpu::{self, OcrLine, OcrPage, page::PageGeometry, page::PageQuality, warp::Homography};

/// Bumped whenever a cluster message or payload changes shape.
pub const PROTOCOL: u8 = 2;

/// The protocol this process speaks: [`PROTOCOL`], or in test builds the one
/// `TEST_FILOT_CLUSTER_PROTOCOL` names (a node "built" with other messages).
pub fn protocol() -> u8 {
    #[cfg(feature = "test-hooks")]
    if let Some(p) = std::env::var("TEST_FILOT_CLUSTER_PROTOCOL")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return p;
    }
    PROTOCOL
}

/// Why a frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("peer speaks cluster protocol {theirs}, this node {ours}")]
    Version { theirs: u8, ours: u8 },
    #[error("empty frame")]
    Empty,
    #[error("malformed frame: {0}")]
    Malformed(String),
}

/// One payload on the wire: the value, or why it could not be decoded.
#[derive(Debug)]
pub struct Frame<T>(pub Result<T, WireError>);

impl<T> Frame<T> {
    pub fn new(value: T) -> Self {
        Self(Ok(value))
    }
}

impl<T: Serialize + DeserializeOwned> Frame<T> {
    pub fn encode(value: &T) -> Vec<u8> {
        let out = vec![protocol()];
        // Only a serializer bug fails here; an empty frame is refused on the other side.
        postcard::to_extend(value, out).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<T, WireError> {
        let (&version, body) = bytes.split_first().ok_or(WireError::Empty)?;
        let ours = protocol();
        if version != ours {
            return Err(WireError::Version {
                theirs: version,
                ours,
            });
        }
        postcard::from_bytes(body).map_err(|e| WireError::Malformed(e.to_string()))
    }
}

impl<T: Serialize + DeserializeOwned> BytesConvertable for Frame<T> {
    fn into_bytes(self) -> Vec<u8> {
        match self.0 {
            Ok(value) => Self::encode(&value),
            Err(_) => Vec::new(),
        }
    }

    fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(Self::decode(&bytes))
    }
}

/// What a node says about itself when it meets another.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Hello {
    /// `name@host`.
    pub name: String,
    pub roles: Vec<String>,
    /// Its OCR devices (`cpu`, `cuda:0`, …), empty without the `ocr` role.
    pub devices: Vec<String>,
    /// How many cards it reads at once.
    pub capacity: u32,
}

/// A heartbeat's answer: how busy the node is.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Pong {
    pub in_flight: u32,
    pub processed: u64,
}

/// The membership actor every node runs (in the [`MEMBERS`] group).
#[derive(RactorClusterMessage)]
pub enum MemberMsg {
    /// Introductions, both ways. Unchanged across protocol versions.
    #[rpc]
    Hello(Frame<Hello>, RpcReplyPort<Frame<Hello>>),
    /// The heartbeat.
    #[rpc]
    Ping(Frame<()>, RpcReplyPort<Frame<Pong>>),
    /// Local: time to ping the peers and re-dial the missing ones.
    Tick,
}

/// A card's bytes, to be read by an OCR node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadRequest {
    /// The document (a log field on the OCR node; no personal data).
    pub document_id: String,
    pub correlation_id: Option<String>,
    /// The card type the document was uploaded as (`None`: recognised from the card), for
    /// deciding whether a doubtful reading gets a second look.
    pub doc_type: Option<crate::kyc::DocumentType>,
    #[serde(with = "serde_bytes_vec")]
    pub bytes: Vec<u8>,
}

/// How an OCR node's read ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ReadReply {
    Page(Box<PageWire>),
    /// The file cannot be read (the stable reason code).
    Unreadable(String),
    /// The model failed; another attempt may succeed.
    EngineError(String),
}

/// An OCR pool serving other nodes (in the [`ocr_group`] of its device kind).
#[derive(RactorClusterMessage)]
pub enum OcrServerMsg {
    #[rpc]
    Read(Frame<ReadRequest>, RpcReplyPort<Frame<ReadReply>>),
}

/// The process group of every node's membership actor (unversioned: it is where versions
/// are compared).
pub const MEMBERS: &str = "filot.members";

/// The process group of OCR pools on `kind` devices (`cpu`, `cuda`) that speak this
/// protocol; a node of another version is in another group and never sent work.
pub fn ocr_group(kind: &str) -> String {
    format!("filot.v{}.ocr:{kind}", protocol())
}

/// The device kind of an `ocr.devices` entry (`cuda:1` → `cuda`).
pub fn device_kind(device: &str) -> &str {
    device.split(':').next().unwrap_or(device)
}

/// An [`OcrPage`] as it crosses the wire (with what the JSON view leaves out).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PageWire {
    pub width: u32,
    pub height: u32,
    pub lines: Vec<LineWire>,
    pub orientation: u16,
    pub card_quad: Option<[[f32; 2]; 4]>,
    pub to_photo: [f64; 9],
    pub photo_scale: f32,
    /// brightness, clipped share, sharpness
    pub quality: [f32; 3],
    /// decode, find, det, post, orient, crops, rec, wait, second (ms)
    pub timings: [f64; 9],
    /// Whether the lines are the second recogniser's.
    pub second_look: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LineWire {
    pub text: String,
    pub confidence: f32,
    pub char_confidence: Vec<f32>,
    pub quad: [[f32; 2]; 4],
}

impl From<&OcrPage> for PageWire {
    fn from(p: &OcrPage) -> Self {
        let t = &p.timings;
        Self {
            width: p.width,
            height: p.height,
            lines: p
                .lines
                .iter()
                .map(|l| LineWire {
                    text: l.text.clone(),
                    confidence: l.confidence,
                    char_confidence: l.char_confidence.clone(),
                    quad: l.quad,
                })
                .collect(),
            orientation: p.geometry.orientation,
            card_quad: p.geometry.card_quad,
            to_photo: p.geometry.to_photo.0,
            photo_scale: p.geometry.photo_scale,
            quality: [
                p.quality.brightness,
                p.quality.clipped_share,
                p.quality.sharpness,
            ],
            timings: [
                t.decode, t.find, t.det, t.post, t.orient, t.crops, t.rec, t.wait, t.second,
            ],
            second_look: p.second_look,
        }
    }
}

impl From<PageWire> for OcrPage {
    fn from(w: PageWire) -> Self {
        let [decode, find, det, post, orient, crops, rec, wait, second] = w.timings;
        let timings = gpu::Timings {
            decode,
            find,
            det,
            post,
            orient,
            crops,
            rec,
            wait,
            second,
        };
        Self {
            width: w.width,
            height: w.height,
            lines: w
                .lines
                .into_iter()
                .map(|l| OcrLine {
                    text: l.text,
                    confidence: l.confidence,
                    char_confidence: l.char_confidence,
                    quad: l.quad,
                })
                .collect(),
            geometry: PageGeometry {
                orientation: w.orientation,
                card_quad: w.card_quad,
                to_photo: Homography(w.to_photo),
                photo_scale: w.photo_scale,
            },
            quality: PageQuality {
                brightness: w.quality[0],
                clipped_share: w.quality[1],
                sharpness: w.quality[2],
            },
            det_ms: find + det + post + orient,
            rec_ms: rec,
            second_look: w.second_look,
            timings,
        }
    }
}

/// Bytes as one length-prefixed run rather than a sequence of numbers.
mod serde_bytes_vec {
    use serde::{Deserializer, Serializer, de::Visitor};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct Bytes;
        impl<'de> Visitor<'de> for Bytes {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
        }
        d.deserialize_byte_buf(Bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_round_trips_and_refuses_other_versions_and_garbage() {
        let hello = Hello {
            name: "ocr1@127.0.0.1".into(),
            roles: vec!["ocr".into()],
            devices: vec!["cpu".into()],
            capacity: 2,
        };
        let bytes = Frame::new(hello.clone()).into_bytes();
        assert_eq!(bytes[0], PROTOCOL);
        assert_eq!(Frame::<Hello>::from_bytes(bytes.clone()).0, Ok(hello));
        let mut other = bytes.clone();
        other[0] = PROTOCOL + 1;
        assert_eq!(
            Frame::<Hello>::from_bytes(other).0,
            Err(WireError::Version {
                theirs: PROTOCOL + 1,
                ours: PROTOCOL
            })
        );
        assert_eq!(Frame::<Hello>::from_bytes(vec![]).0, Err(WireError::Empty));
        assert!(matches!(
            Frame::<Hello>::from_bytes(vec![PROTOCOL, 0xff, 0xff]).0,
            Err(WireError::Malformed(_))
        ));
        // A truncated frame is an error too, never a panic.
        for cut in 1..bytes.len() {
            assert!(Frame::<Hello>::from_bytes(bytes[..cut].to_vec()).0.is_err());
        }
    }

    #[test]
    fn card_bytes_travel_as_one_run() {
        let req = ReadRequest {
            document_id: "d".into(),
            correlation_id: None,
            doc_type: Some(crate::kyc::DocumentType::Npwp),
            bytes: vec![7; 100_000],
        };
        let bytes = Frame::new(req).into_bytes();
        assert!(bytes.len() < 100_020, "{}", bytes.len());
        let back = Frame::<ReadRequest>::from_bytes(bytes).0.unwrap();
        assert_eq!(back.bytes.len(), 100_000);
        assert_eq!(back.doc_type, Some(crate::kyc::DocumentType::Npwp));
    }

    #[test]
    fn ocr_groups_carry_the_protocol_and_the_device_kind() {
        assert_eq!(device_kind("cuda:1"), "cuda");
        assert_eq!(device_kind("cpu"), "cpu");
        assert_eq!(ocr_group("cuda"), format!("filot.v{PROTOCOL}.ocr:cuda"));
    }
}
