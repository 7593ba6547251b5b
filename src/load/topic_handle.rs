//! A librdkafka topic handle: one `rd_kafka_produceva` call per record,
//! without rdkafka's per-record topic lookup (the producer's hot path).

use anyhow::Result;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{Producer, ProducerContext, ThreadedProducer};

/// A librdkafka topic handle for the producer's topic. rdkafka's
/// `BaseProducer::send` names the topic per record: it allocates a CString
/// and librdkafka looks the topic up by name under the client's lock each
/// time. With the handle, a record is one `rd_kafka_produceva` call that
/// allocates nothing beyond librdkafka's own copy of the payload.
/// It borrows the producer, so the client outlives the handle.
pub(crate) struct TopicHandle<'p, C: ProducerContext + 'static> {
    rk: *mut rdkafka::bindings::rd_kafka_t,
    rkt: *mut rdkafka::bindings::rd_kafka_topic_t,
    _producer: std::marker::PhantomData<&'p ThreadedProducer<C>>,
}

impl<'p, C: ProducerContext + 'static> TopicHandle<'p, C> {
    pub(crate) fn new(
        producer: &'p ThreadedProducer<C>,
        topic: &str,
    ) -> Result<TopicHandle<'p, C>> {
        let name = std::ffi::CString::new(topic)
            .map_err(|_| anyhow::anyhow!("topic name {topic:?} contains a NUL byte"))?;
        let rk = producer.client().native_ptr();
        // SAFETY: `rk` is a live client (the handle borrows the producer);
        // a NULL conf means the client's default topic config.
        let rkt = unsafe {
            rdkafka::bindings::rd_kafka_topic_new(rk, name.as_ptr(), std::ptr::null_mut())
        };
        if rkt.is_null() {
            anyhow::bail!("librdkafka refused a handle for topic {topic}");
        }
        Ok(TopicHandle {
            rk,
            rkt,
            _producer: std::marker::PhantomData,
        })
    }

    /// Hands one record to librdkafka, which copies the key and the
    /// payload; an empty `key` sends the record without one. `opaque`
    /// comes back to the context's `delivery` (the producer's
    /// `DeliveryContext`) as rdkafka's `usize`
    /// delivery opaque (a pointer-sized integer, see `IntoOpaque for usize`).
    #[inline]
    pub(crate) fn produce(
        &self,
        partition: i32,
        key: &[u8],
        payload: &[u8],
        opaque: usize,
        timestamp_ms: i64,
    ) -> std::result::Result<(), RDKafkaErrorCode> {
        use rdkafka::bindings::{
            RD_KAFKA_MSG_F_COPY, rd_kafka_vtype_t as T, rd_kafka_vu_s__bindgen_ty_1 as U,
            rd_kafka_vu_s__bindgen_ty_1__bindgen_ty_1 as Mem, rd_kafka_vu_t as Vu,
        };
        let vus = [
            Vu {
                vtype: T::RD_KAFKA_VTYPE_RKT,
                u: U { rkt: self.rkt },
            },
            Vu {
                vtype: T::RD_KAFKA_VTYPE_PARTITION,
                u: U { i32_: partition },
            },
            Vu {
                vtype: T::RD_KAFKA_VTYPE_VALUE,
                u: U {
                    mem: Mem {
                        ptr: payload.as_ptr() as *mut std::ffi::c_void,
                        size: payload.len(),
                    },
                },
            },
            Vu {
                vtype: T::RD_KAFKA_VTYPE_OPAQUE,
                u: U {
                    ptr: opaque as *mut std::ffi::c_void,
                },
            },
            Vu {
                vtype: T::RD_KAFKA_VTYPE_MSGFLAGS,
                u: U {
                    i: RD_KAFKA_MSG_F_COPY,
                },
            },
            Vu {
                vtype: T::RD_KAFKA_VTYPE_TIMESTAMP,
                u: U { i64_: timestamp_ms },
            },
            // Last, so a record without a key leaves it out.
            Vu {
                vtype: T::RD_KAFKA_VTYPE_KEY,
                u: U {
                    mem: Mem {
                        ptr: key.as_ptr() as *mut std::ffi::c_void,
                        size: key.len(),
                    },
                },
            },
        ];
        let used = if key.is_empty() {
            vus.len() - 1
        } else {
            vus.len()
        };
        // SAFETY: `rk` and `rkt` are live (see `new`); every entry of `vus`
        // sets the union field its vtype names, and `used` is at most its
        // length; with F_COPY librdkafka copies the payload (and it always
        // copies the key) before it returns, and never writes to either.
        let err = unsafe { rdkafka::bindings::rd_kafka_produceva(self.rk, vus.as_ptr(), used) };
        if err.is_null() {
            return Ok(());
        }
        // SAFETY: a non-NULL error is ours to read and destroy.
        let code = unsafe {
            let code = rdkafka::bindings::rd_kafka_error_code(err);
            rdkafka::bindings::rd_kafka_error_destroy(err);
            code
        };
        Err(code.into())
    }
}

impl<C: ProducerContext + 'static> Drop for TopicHandle<'_, C> {
    fn drop(&mut self) {
        // SAFETY: releases the reference `rd_kafka_topic_new` gave us; the
        // client is still alive (see `new`).
        unsafe { rdkafka::bindings::rd_kafka_topic_destroy(self.rkt) }
    }
}
