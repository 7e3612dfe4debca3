// TCP selective acknowledgements. Mirrors FreeBSD's sys/netinet/tcp_sack.c:
// the receiver's list of blocks to report (tcp_update_sack_list,
// tcp_clean_sackreport), and the sender's scoreboard of holes built from
// the blocks it is sent (tcp_sack_doack) from which loss recovery picks
// what to retransmit next (tcp_sack_output).
//
// Loss recovery with SACK follows RFC 6675: while in recovery the sender
// keeps "pipe" (bytes presumed in the network) below cwnd, taking holes
// first and new data after. As in FreeBSD before PRR, every hole below the
// highest SACKed byte is presumed lost, so pipe is the data sent above that
// byte plus what was retransmitted into the holes.
#include <algorithm>

#include "sys/netinet/tcp_var.h"

namespace uk {

// ---- receiver ----

void tcp_update_sack_list(tcpcb* tp, tcp_seq start, tcp_seq end) {
  sackblk head{start, end};
  sackblk saved[MAX_SACK_BLKS];
  int n = 0;
  const bool add = SEQ_LT(start, end) && SEQ_GT(end, tp->rcv_nxt);
  if (add && SEQ_LT(head.start, tp->rcv_nxt)) head.start = tp->rcv_nxt;
  for (int i = 0; i < tp->rcv_numsacks; i++) {
    sackblk b = tp->sackblks[i];
    // Blocks the cumulative ACK now covers are no longer news.
    if (SEQ_LEQ(b.end, tp->rcv_nxt)) continue;
    if (SEQ_LT(b.start, tp->rcv_nxt)) b.start = tp->rcv_nxt;
    if (add && SEQ_LEQ(head.start, b.end) && SEQ_GEQ(head.end, b.start)) {
      // Overlapping or adjacent: one block, reported first.
      head.start = SEQ_MIN(head.start, b.start);
      head.end = SEQ_MAX(head.end, b.end);
      continue;
    }
    saved[n++] = b;
  }
  // RFC 2018: the first block holds the segment that triggered this ACK;
  // the others follow, most recent first.
  int k = 0;
  if (add) tp->sackblks[k++] = head;
  for (int i = 0; i < n && k < MAX_SACK_BLKS; i++) tp->sackblks[k++] = saved[i];
  tp->rcv_numsacks = k;
}

void tcp_clean_sackreport(tcpcb* tp) {
  tp->rcv_numsacks = 0;
  for (auto& b : tp->sackblks) b = sackblk{};
}

// ---- sender ----

namespace {

// Takes [start, end) out of the holes (it was SACKed). Returns the bytes
// removed.
uint32_t sack_remove(tcpcb* tp, tcp_seq start, tcp_seq end) {
  uint32_t removed = 0;
  std::vector<sackhole>& h = tp->snd_holes;
  for (size_t i = 0; i < h.size();) {
    sackhole& p = h[i];
    if (SEQ_LEQ(p.end, start) || SEQ_GEQ(p.start, end)) {
      i++;
      continue;
    }
    if (SEQ_LEQ(start, p.start) && SEQ_GEQ(end, p.end)) {
      removed += p.end - p.start;
      h.erase(h.begin() + i);
      continue;
    }
    if (SEQ_LEQ(start, p.start)) {
      // The block covers the front of the hole.
      removed += end - p.start;
      p.start = end;
      p.rxmit = SEQ_MAX(p.rxmit, p.start);
      i++;
      continue;
    }
    if (SEQ_GEQ(end, p.end)) {
      // The block covers the back of the hole.
      removed += p.end - start;
      p.end = start;
      p.rxmit = SEQ_MIN(p.rxmit, p.end);
      i++;
      continue;
    }
    // The block is inside the hole: split it.
    removed += end - start;
    sackhole upper{end, p.end, SEQ_MAX(p.rxmit, end)};
    p.end = start;
    p.rxmit = SEQ_MIN(p.rxmit, start);
    h.insert(h.begin() + i + 1, upper);
    i += 2;
  }
  return removed;
}

void sack_recount(tcpcb* tp) {
  uint32_t rx = 0;
  for (const sackhole& p : tp->snd_holes) rx += p.rxmit - p.start;
  tp->sack_bytes_rexmit = rx;
}

}  // namespace

bool tcp_sack_doack(tcpcb* tp, const sackblk* blks, int nblks, tcp_seq th_ack) {
  InetState& in = *tp->t_inpcb->inp_pcbinfo;
  bool changed = false;
  // The cumulative ACK first: holes below it are gone.
  if (!tp->snd_holes.empty()) {
    std::vector<sackhole>& h = tp->snd_holes;
    size_t drop = 0;
    while (drop < h.size() && SEQ_LEQ(h[drop].end, th_ack)) drop++;
    h.erase(h.begin(), h.begin() + drop);
    if (!h.empty() && SEQ_LT(h.front().start, th_ack)) {
      h.front().start = th_ack;
      h.front().rxmit = SEQ_MAX(h.front().rxmit, th_ack);
    }
  }
  if (SEQ_LT(tp->snd_fack, th_ack) || SEQ_GT(tp->snd_fack, tp->snd_max))
    tp->snd_fack = th_ack;

  // Valid blocks only (as FreeBSD: above the ACK, within what was sent),
  // in ascending order.
  sackblk sb[TCP_MAX_SACK];
  int n = 0;
  for (int i = 0; i < nblks && n < TCP_MAX_SACK; i++) {
    const sackblk& b = blks[i];
    if (SEQ_GT(b.end, b.start) && SEQ_GT(b.start, tp->snd_una) &&
        SEQ_GT(b.start, th_ack) && SEQ_LT(b.start, tp->snd_max) &&
        SEQ_GT(b.end, tp->snd_una) && SEQ_LEQ(b.end, tp->snd_max))
      sb[n++] = b;
  }
  in.tcps.tcps_sack_rcv_blocks.add(nblks);
  std::sort(sb, sb + n, [](const sackblk& a, const sackblk& b) {
    return SEQ_LT(a.start, b.start);
  });
  for (int i = 0; i < n; i++) {
    const sackblk& b = sb[i];
    if (SEQ_GT(b.end, tp->snd_fack)) {
      if (SEQ_GT(b.start, tp->snd_fack)) {
        // New data SACKed above everything known: the gap is a hole.
        tp->snd_holes.push_back(sackhole{tp->snd_fack, b.start, tp->snd_fack});
      } else if (SEQ_LT(b.start, tp->snd_fack)) {
        sack_remove(tp, b.start, tp->snd_fack);
      }
      tp->snd_fack = b.end;
      changed = true;
    } else if (sack_remove(tp, b.start, b.end) > 0) {
      changed = true;
    }
  }
  sack_recount(tp);
  return changed;
}

sackhole* tcp_sack_output(tcpcb* tp, uint32_t* sack_bytes_rexmt) {
  *sack_bytes_rexmt = tp->sack_bytes_rexmit;
  for (sackhole& p : tp->snd_holes)
    if (SEQ_LT(p.rxmit, p.end)) return &p;
  return nullptr;
}

void tcp_sack_rexmit_done(tcpcb* tp, sackhole* p, int len) {
  p->rxmit += len;
  tp->sack_bytes_rexmit += len;
}

uint32_t tcp_sack_pipe(tcpcb* tp) {
  tcp_seq fack = SEQ_MAX(tp->snd_fack, tp->snd_una);
  if (SEQ_GT(fack, tp->snd_max)) fack = tp->snd_max;
  return (tp->snd_max - fack) + tp->sack_bytes_rexmit;
}

uint32_t tcp_sack_sacked_bytes(tcpcb* tp) {
  if (SEQ_LEQ(tp->snd_fack, tp->snd_una)) return 0;
  uint32_t holes = 0;
  for (const sackhole& p : tp->snd_holes) holes += p.end - p.start;
  uint32_t span = tp->snd_fack - tp->snd_una;
  return span > holes ? span - holes : 0;
}

void tcp_free_sackholes(tcpcb* tp) {
  tp->snd_holes.clear();
  tp->sack_bytes_rexmit = 0;
  tp->snd_fack = tp->snd_una;
}

}  // namespace uk
