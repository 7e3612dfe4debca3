// TCP reassembly. Mirrors FreeBSD's sys/netinet/tcp_reass.c: out-of-order
// segments wait in a sequence-ordered queue (overlaps trimmed, bounded by
// net.inet.tcp.reass.maxqueuelen) and move to the socket buffer once the
// hole before them is filled.
#include <algorithm>

#include "sys/netinet/tcp_var.h"

namespace uk {

void tcp_reass_flush(tcpcb* tp) {
  for (auto& q : tp->t_segq) m_freem(q.m);
  tp->t_segq.clear();
  tp->t_segqlen = 0;
  tcp_clean_sackreport(tp);
}

int tcp_reass(tcpcb* tp, int th_flags, tcp_seq seq, int* tlenp, mbuf* m) {
  InetState& in = *tp->t_inpcb->inp_pcbinfo;
  socket* so = tp->t_inpcb->inp_socket;
  if (m != nullptr) {
    int tlen = *tlenp;
    if (static_cast<int>(tp->t_segq.size()) >= in.tcp_reass_maxqueuelen.load() &&
        seq != tp->rcv_nxt) {
      in.tcps.tcps_rcvreassfull.add(1);
      m_freem(m);
      *tlenp = 0;
      return 0;
    }
    if (seq != tp->rcv_nxt) {
      in.tcps.tcps_rcvoopack.add(1);
      in.tcps.tcps_rcvoobyte.add(tlen);
      // Reported in the SACK option of the ACK this segment triggers.
      if (tp->t_flags & TF_SACK_PERMIT) tcp_update_sack_list(tp, seq, seq + tlen);
    }
    // First entry that starts after seq.
    auto it = tp->t_segq.begin();
    while (it != tp->t_segq.end() && SEQ_LEQ(it->seq, seq)) ++it;
    // Trim against the predecessor.
    if (it != tp->t_segq.begin()) {
      auto prev = std::prev(it);
      int i = static_cast<int32_t>(prev->seq + prev->len - seq);
      if (i > 0) {
        if (i >= tlen) {
          in.tcps.tcps_rcvduppack.add(1);
          in.tcps.tcps_rcvdupbyte.add(tlen);
          m_freem(m);
          *tlenp = 0;
          m = nullptr;
        } else {
          m_adj(m, i);
          tlen -= i;
          seq += i;
        }
      }
    }
    if (m != nullptr) {
      // Trim or remove successors we cover.
      while (it != tp->t_segq.end()) {
        int i = static_cast<int32_t>(seq + tlen - it->seq);
        if (i <= 0) break;
        if (i < it->len) {
          m_adj(it->m, i);
          it->seq += i;
          it->len -= i;
          tp->t_segqlen -= i;
          break;
        }
        tp->t_segqlen -= it->len;
        th_flags |= it->flags & TH_FIN;
        m_freem(it->m);
        it = tp->t_segq.erase(it);
      }
      tp->t_segq.insert(it, tseg_qent{seq, tlen, static_cast<uint8_t>(th_flags & TH_FIN), m});
      tp->t_segqlen += tlen;
    }
  }
  // Present in-order data to the user.
  if (tp->t_state < TCPS_ESTABLISHED || tp->t_segq.empty() ||
      tp->t_segq.front().seq != tp->rcv_nxt)
    return 0;
  int flags = 0;
  int appended = 0;
  mbuf* chain = nullptr;
  mbuf** tail = &chain;
  while (!tp->t_segq.empty() && tp->t_segq.front().seq == tp->rcv_nxt) {
    tseg_qent q = tp->t_segq.front();
    tp->t_segq.pop_front();
    tp->t_segqlen -= q.len;
    tp->rcv_nxt += q.len;
    appended += q.len;
    flags = q.flags & TH_FIN;
    *tail = q.m;
    while (*tail) tail = &(*tail)->m_next;
    if (flags) break;
  }
  *tlenp = appended;
  // What rcv_nxt now covers is no longer reported in SACK blocks.
  if (tp->t_segq.empty())
    tcp_clean_sackreport(tp);
  else
    tcp_update_sack_list(tp, tp->rcv_nxt, tp->rcv_nxt);
  if (so != nullptr) {
    so->so_rcv.sb_mtx.Lock();
    if (so->so_rcv.sb_state & SBS_CANTRCVMORE) {
      so->so_rcv.sb_mtx.Unlock();
      m_freem(chain);
    } else {
      for (mbuf* n = chain; n; n = n->m_next) n->m_flags &= ~M_PKTHDR;
      sbappendstream_locked(&so->so_rcv, chain, 0);
      sorwakeup_locked(so);
    }
  } else {
    m_freem(chain);
  }
  return flags;
}

}  // namespace uk
