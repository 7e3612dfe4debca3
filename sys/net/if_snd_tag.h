// Send tags (FreeBSD's struct m_snd_tag and if_snd_tag_alloc()): a driver
// object that a connection allocates on its route's interface and then
// attaches to every packet it sends (pkthdr.snd_tag + CSUM_SND_TAG). NIC TLS
// offload keeps the session's keys in a TLS tag, pacing keeps its rate in a
// RATE_LIMIT / TLS_RATE_LIMIT tag, and RX offload tracks records with a
// TLS_RX tag. Mirrors sys/net/if_var.h and kern_mbuf.c (m_snd_tag_init,
// m_snd_tag_destroy, kern.ipc.num_snd_tags).
//
// Ownership: tags are refcounted (RefCounted<m_snd_tag>). The allocator gets
// one reference; each packet carrying the tag holds another, released by
// whoever consumes the packet (the driver after transmit). The last release
// calls the driver's snd_tag_free.
#ifndef UKTLS_SYS_NET_IF_SND_TAG_H_
#define UKTLS_SYS_NET_IF_SND_TAG_H_

#include <atomic>
#include <cstdint>

#include "sys/sys/counter.h"
#include "sys/sys/refcount.h"

namespace uk {

struct ifnet;
struct inpcb;
struct ktls_session;
struct m_snd_tag;

// if_snd_tag_type (FreeBSD's numbers).
enum if_snd_tag_type : uint32_t {
  IF_SND_TAG_TYPE_RATE_LIMIT = 0,
  IF_SND_TAG_TYPE_UNLIMITED = 1,
  IF_SND_TAG_TYPE_TLS = 2,
  IF_SND_TAG_TYPE_TLS_RATE_LIMIT = 3,
  IF_SND_TAG_TYPE_TLS_RX = 4,
  IF_SND_TAG_TYPE_MAX = 5,
};

struct if_snd_tag_alloc_header {
  uint32_t type = 0;       // if_snd_tag_type
  uint32_t flowid = 0;
  uint8_t flowtype = 0;
  uint8_t numa_domain = 0;
};

struct if_snd_tag_alloc_rate_limit {
  if_snd_tag_alloc_header hdr;
  uint64_t max_rate = 0;  // bytes/s
  uint32_t flags = 0;
  uint32_t reserved = 0;
};

struct if_snd_tag_alloc_tls {
  if_snd_tag_alloc_header hdr;
  inpcb* inp = nullptr;
  const ktls_session* tls = nullptr;
};

struct if_snd_tag_alloc_tls_rate_limit {
  if_snd_tag_alloc_header hdr;
  inpcb* inp = nullptr;
  const ktls_session* tls = nullptr;
  uint64_t max_rate = 0;  // bytes/s
};

struct if_snd_tag_alloc_tls_rx {
  if_snd_tag_alloc_header hdr;
  inpcb* inp = nullptr;
  const ktls_session* tls = nullptr;
  uint16_t vlan_id = 0;  // 0xfff = none
};

union if_snd_tag_alloc_params {
  if_snd_tag_alloc_params() : hdr() {}
  if_snd_tag_alloc_header hdr;
  if_snd_tag_alloc_rate_limit rate_limit;
  if_snd_tag_alloc_rate_limit unlimited;
  if_snd_tag_alloc_tls tls;
  if_snd_tag_alloc_tls_rate_limit tls_rate_limit;
  if_snd_tag_alloc_tls_rx tls_rx;
};

struct if_snd_tag_rate_limit_params {
  uint64_t max_rate = 0;     // bytes/s
  uint32_t queue_level = 0;  // 0 (empty) .. IF_SND_QUEUE_LEVEL_MAX (full)
  uint32_t flags = 0;
};
constexpr uint32_t IF_SND_QUEUE_LEVEL_MIN = 0;
constexpr uint32_t IF_SND_QUEUE_LEVEL_MAX = 65536;

// Resynchronises RX TLS: the TCP sequence number of a record header, its
// length (0 = resume after a hole), and its TLS sequence number.
struct if_snd_tag_modify_tls_rx {
  uint32_t tls_hdr_tcp_sn = 0;
  uint32_t tls_rec_length = 0;
  uint64_t tls_seq_number = 0;
};

union if_snd_tag_modify_params {
  if_snd_tag_modify_params() : rate_limit() {}
  if_snd_tag_rate_limit_params rate_limit;
  if_snd_tag_rate_limit_params unlimited;
  if_snd_tag_rate_limit_params tls_rate_limit;
  if_snd_tag_modify_tls_rx tls_rx;
};

union if_snd_tag_query_params {
  if_snd_tag_query_params() : rate_limit() {}
  if_snd_tag_rate_limit_params rate_limit;
  if_snd_tag_rate_limit_params unlimited;
  if_snd_tag_rate_limit_params tls_rate_limit;
};

// The driver's methods for one kind of tag (FreeBSD's if_snd_tag_sw).
struct if_snd_tag_sw {
  int (*snd_tag_modify)(m_snd_tag* mst, if_snd_tag_modify_params* p);
  int (*snd_tag_query)(m_snd_tag* mst, if_snd_tag_query_params* p);
  void (*snd_tag_free)(m_snd_tag* mst);  // releases the driver's object
  uint32_t type;                         // if_snd_tag_type
};

struct m_snd_tag : RefCounted<m_snd_tag> {
  ifnet* ifp = nullptr;               // the interface that allocated it
  const if_snd_tag_sw* sw = nullptr;
  counter_u64* num_tags = nullptr;    // kern.ipc.num_snd_tags of the kernel
  // The driver instance that owns the tag, so a driver can check that a
  // packet's tag is its own before using its private part.
  const void* softc = nullptr;

  uint32_t type() const { return sw->type; }
  // RefPtr's last release: m_snd_tag_destroy().
  void last_release();

 protected:
  m_snd_tag() = default;
  ~m_snd_tag() = default;
};

// Initialises a driver's new tag (one reference, owned by the caller) and
// counts it in *num_tags, as m_snd_tag_init().
void m_snd_tag_init(m_snd_tag* mst, ifnet* ifp, const if_snd_tag_sw* sw,
                    counter_u64* num_tags);
inline m_snd_tag* m_snd_tag_ref(m_snd_tag* mst) {
  mst->ref();
  return mst;
}
inline void m_snd_tag_rele(m_snd_tag* mst) { release_ref(mst); }

}  // namespace uk

#endif  // UKTLS_SYS_NET_IF_SND_TAG_H_
