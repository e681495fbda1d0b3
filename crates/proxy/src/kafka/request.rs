//! Kafka request headers and the topics each request names, for Produce,
//! Fetch, ListOffsets, Metadata, OffsetCommit and OffsetFetch across classic
//! and flexible versions. Other requests are known to name no topic, or are
//! marked `topics_known = false` (only topic-less rules can allow them).

use ::policy::l7::KAFKA_API_KEYS;

use super::is_flexible;
use super::wire::{KafkaError, Reader};
use crate::access_log::L7Protocol;
use crate::filter::{L7Request, LogFields};
use crate::policy::{CompiledPolicy, KafkaRequestView};

pub const PRODUCE: i16 = 0;
pub const FETCH: i16 = 1;
pub const LIST_OFFSETS: i16 = 2;
pub const METADATA: i16 = 3;
pub const OFFSET_COMMIT: i16 = 8;
pub const OFFSET_FETCH: i16 = 9;
pub const API_VERSIONS: i16 = 18;

/// API keys whose requests never name a topic (group, coordinator, SASL,
/// version and producer-id requests).
const TOPICLESS_KEYS: [i16; 14] = [10, 11, 12, 13, 14, 15, 16, 17, 18, 22, 25, 26, 36, 42];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPartitions {
    pub name: String,
    pub partitions: Vec<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaRequest {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
    pub topics: Vec<TopicPartitions>,
    /// False when the request may name topics the parser could not read.
    pub topics_known: bool,
    /// Produce only: `acks` (0 = the client expects no response).
    pub acks: Option<i16>,
    /// Names of `topics`, for matching and logging.
    pub topic_names: Vec<String>,
}

impl KafkaRequest {
    pub fn expects_response(&self) -> bool {
        !(self.api_key == PRODUCE && self.acks == Some(0))
    }

    pub fn api_name(&self) -> String {
        KAFKA_API_KEYS
            .iter()
            .find(|(_, key)| *key == self.api_key)
            .map_or_else(
                || format!("apikey-{}", self.api_key),
                |(name, _)| name.to_string(),
            )
    }
}

/// Parses one request (the frame payload, without the 4-byte size).
pub fn parse_request(payload: &[u8]) -> Result<KafkaRequest, KafkaError> {
    let mut reader = Reader::new(payload);
    let api_key = reader.i16()?;
    let api_version = reader.i16()?;
    if api_key < 0 || api_version < 0 {
        return Err(KafkaError::Invalid {
            what: "api key or version",
            at: 0,
        });
    }
    let correlation_id = reader.i32()?;
    // The header's client id is a classic nullable string even in header v2.
    let client_id = reader.string(false)?;
    let flexible = is_flexible(api_key, api_version);
    if flexible {
        reader.skip_tagged_fields()?;
    }
    let mut request = KafkaRequest {
        api_key,
        api_version,
        correlation_id,
        client_id,
        topics: Vec::new(),
        topics_known: true,
        acks: None,
        topic_names: Vec::new(),
    };
    let body = Body {
        reader: &mut reader,
        flexible,
        version: api_version,
    };
    match api_key {
        PRODUCE => body.produce(&mut request)?,
        FETCH if api_version <= 12 => body.fetch(&mut request)?,
        LIST_OFFSETS => body.list_offsets(&mut request)?,
        METADATA => body.metadata(&mut request)?,
        OFFSET_COMMIT => body.offset_commit(&mut request)?,
        OFFSET_FETCH if api_version <= 7 => body.offset_fetch(&mut request)?,
        key if TOPICLESS_KEYS.contains(&key) => {}
        _ => request.topics_known = false,
    }
    request.topic_names = request.topics.iter().map(|t| t.name.clone()).collect();
    Ok(request)
}

struct Body<'r, 'a> {
    reader: &'r mut Reader<'a>,
    flexible: bool,
    version: i16,
}

impl Body<'_, '_> {
    fn name(&mut self) -> Result<String, KafkaError> {
        let at = self.reader.position();
        self.reader
            .string(self.flexible)?
            .ok_or(KafkaError::Invalid {
                what: "null topic name",
                at,
            })
    }

    fn tags(&mut self) -> Result<(), KafkaError> {
        if self.flexible {
            self.reader.skip_tagged_fields()?;
        }
        Ok(())
    }

    /// Reads `[topic name, [partition...]]`, `partition` reading one entry
    /// after its leading partition index.
    fn topics(
        mut self,
        request: &mut KafkaRequest,
        partition: impl Fn(&mut Body<'_, '_>) -> Result<(), KafkaError>,
    ) -> Result<(), KafkaError> {
        let count = self.reader.array_len(self.flexible, 2)?.unwrap_or(0);
        for _ in 0..count {
            let name = self.name()?;
            let partitions = self.reader.array_len(self.flexible, 4)?.unwrap_or(0);
            let mut indexes = Vec::with_capacity(partitions);
            for _ in 0..partitions {
                indexes.push(self.reader.i32()?);
                partition(&mut self)?;
                self.tags()?;
            }
            self.tags()?;
            request.topics.push(TopicPartitions {
                name,
                partitions: indexes,
            });
        }
        Ok(())
    }

    fn produce(self, request: &mut KafkaRequest) -> Result<(), KafkaError> {
        if self.version >= 3 {
            self.reader.string(self.flexible)?; // transactional_id
        }
        request.acks = Some(self.reader.i16()?);
        self.reader.i32()?; // timeout
        self.topics(request, |body| body.reader.skip_bytes(body.flexible))
    }

    fn fetch(self, request: &mut KafkaRequest) -> Result<(), KafkaError> {
        let v = self.version;
        self.reader.i32()?; // replica_id
        self.reader.i32()?; // max_wait_ms
        self.reader.i32()?; // min_bytes
        if v >= 3 {
            self.reader.i32()?; // max_bytes
        }
        if v >= 4 {
            self.reader.i8()?; // isolation_level
        }
        if v >= 7 {
            self.reader.i64()?; // session_id + session_epoch
        }
        self.topics(request, move |body| {
            if v >= 9 {
                body.reader.i32()?; // current_leader_epoch
            }
            body.reader.i64()?; // fetch_offset
            if v >= 12 {
                body.reader.i32()?; // last_fetched_epoch
            }
            if v >= 5 {
                body.reader.i64()?; // log_start_offset
            }
            body.reader.i32().map(|_| ()) // partition_max_bytes
        })
    }

    fn list_offsets(self, request: &mut KafkaRequest) -> Result<(), KafkaError> {
        let v = self.version;
        self.reader.i32()?; // replica_id
        if v >= 2 {
            self.reader.i8()?; // isolation_level
        }
        self.topics(request, move |body| {
            if v >= 4 {
                body.reader.i32()?; // current_leader_epoch
            }
            body.reader.i64()?; // timestamp
            if v == 0 {
                body.reader.i32()?; // max_num_offsets
            }
            Ok(())
        })
    }

    fn metadata(mut self, request: &mut KafkaRequest) -> Result<(), KafkaError> {
        // Null (or, in v0, empty) = all topics: treated as topic-less, as Cilium does.
        let count = self.reader.array_len(self.flexible, 1)?.unwrap_or(0);
        for _ in 0..count {
            if self.version >= 10 {
                self.reader.take(16)?; // topic_id
                match self.reader.string(true)? {
                    Some(name) => request.topics.push(TopicPartitions {
                        name,
                        partitions: Vec::new(),
                    }),
                    None => request.topics_known = false,
                }
            } else {
                let name = self.name()?;
                request.topics.push(TopicPartitions {
                    name,
                    partitions: Vec::new(),
                });
            }
            self.tags()?;
        }
        Ok(())
    }

    fn offset_commit(self, request: &mut KafkaRequest) -> Result<(), KafkaError> {
        let v = self.version;
        self.reader.string(self.flexible)?; // group_id
        if v >= 1 {
            self.reader.i32()?; // generation_id
            self.reader.string(self.flexible)?; // member_id
        }
        if v >= 7 {
            self.reader.string(self.flexible)?; // group_instance_id
        }
        if (2..=4).contains(&v) {
            self.reader.i64()?; // retention_time_ms
        }
        self.topics(request, move |body| {
            body.reader.i64()?; // committed_offset
            if v >= 6 {
                body.reader.i32()?; // committed_leader_epoch
            }
            if v == 1 {
                body.reader.i64()?; // commit_timestamp
            }
            body.reader.string(body.flexible).map(|_| ()) // committed_metadata
        })
    }

    fn offset_fetch(mut self, request: &mut KafkaRequest) -> Result<(), KafkaError> {
        self.reader.string(self.flexible)?; // group_id
        let count = self.reader.array_len(self.flexible, 2)?.unwrap_or(0);
        for _ in 0..count {
            let name = self.name()?;
            let partitions = self.reader.array_len(self.flexible, 4)?.unwrap_or(0);
            let mut indexes = Vec::with_capacity(partitions);
            for _ in 0..partitions {
                indexes.push(self.reader.i32()?);
            }
            self.tags()?;
            request.topics.push(TopicPartitions {
                name,
                partitions: indexes,
            });
        }
        Ok(())
    }
}

impl L7Request for KafkaRequest {
    fn protocol(&self) -> L7Protocol {
        L7Protocol::Kafka
    }

    fn allowed_by(&self, policy: &CompiledPolicy, remote_identity: u32) -> bool {
        let view = KafkaRequestView {
            api_key: self.api_key,
            api_version: self.api_version,
            client_id: self.client_id.as_deref(),
            topics: &self.topic_names,
            topics_known: self.topics_known,
        };
        policy.allows_kafka(remote_identity, &view)
    }

    fn log_fields(&self) -> LogFields {
        LogFields {
            method: self.api_name(),
            path: String::new(),
            host: None,
            topics: self.topic_names.clone(),
            dns: None,
        }
    }
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
