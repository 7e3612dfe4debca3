// TCP output. Mirrors FreeBSD's sys/netinet/tcp_output.c: how much may be
// sent (never more than sbavail(): bytes at or after sb_fnrdy are not
// ready), Nagle, window updates, SYN options (MSS, window scale), the FIN
// only with the last byte of the send buffer, segments built with m_copym
// so data pages are shared (M_EXTPG records pass through untouched), send
// buffer autosizing (tcp_sndbuf_autoscale), and timer management.
#include <arpa/inet.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>

#include "sys/kern/kernel.h"
#include "sys/kern/uipc_ktls.h"
#include "sys/net/if_snd_tag.h"
#include "sys/net/if_var.h"
#include "sys/netinet/ip.h"
#include "sys/netinet/tcp_offload.h"
#include "sys/netinet/tcp_var.h"

namespace uk {

static const uint8_t tcp_outflags[] = {
    TH_RST | TH_ACK, 0,      TH_SYN,          TH_SYN | TH_ACK,
    TH_ACK,          TH_ACK, TH_FIN | TH_ACK, TH_FIN | TH_ACK,
    TH_FIN | TH_ACK, TH_ACK, TH_ACK,
};

constexpr int kMaxLinkHdr = 16;

int tcp_output(tcpcb* tp) {
  tp->t_inpcb->inp_lock.AssertHeld();
  // An offloaded connection's segments are the device's business.
  if (tp->t_flags & TF_TOE) return tcp_offload_output(tp);
  return tcp_default_output(tp);
}

int tcp_default_output(tcpcb* tp) {
  inpcb* inp = tp->t_inpcb;
  InetState& in = *inp->inp_pcbinfo;
  kernel& k = in.k;
  inp->inp_lock.AssertHeld();
  socket* so = inp->inp_socket;
  if (so == nullptr) {
    // TIME_WAIT or a detached pcb: only an ACK can be owed.
    if (tp->t_flags & TF_ACKNOW) {
      tcp_respond(k, nullptr, inp->inp_laddr, inp->inp_faddr, inp->inp_lport,
                  inp->inp_fport, tp->rcv_nxt, tp->snd_max, TH_ACK, 0);
      tp->t_flags &= ~(TF_ACKNOW | TF_DELACK);
    }
    return 0;
  }
  bool idle = tp->snd_max == tp->snd_una;
  int sendalot;
  int error = 0;
  sackhole* p;
  bool sack_rxmit;
  long sack_room;
again:
  sendalot = 0;
  long off = static_cast<int32_t>(tp->snd_nxt - tp->snd_una);
  long sendwin = std::min(tp->snd_wnd, tp->snd_cwnd);
  // SACK loss recovery (RFC 6675 NextSeg, FreeBSD's tcp_sack_output): while
  // the pipe is below cwnd, retransmit the first hole not yet resent; when
  // none is left, send new data within the same room.
  p = nullptr;
  sack_rxmit = false;
  sack_room = -1;
  if ((tp->t_flags & (TF_SACK_PERMIT | TF_FASTRECOVERY)) ==
      (TF_SACK_PERMIT | TF_FASTRECOVERY)) {
    sack_room = std::max<long>(sendwin - static_cast<long>(tcp_sack_pipe(tp)), 0);
    uint32_t sack_bytes_rxmt;
    p = tcp_sack_output(tp, &sack_bytes_rxmt);
    // Holes above snd_recover belong to data sent during this episode.
    if (p != nullptr && sack_room > 0 && SEQ_LT(p->rxmit, tp->snd_recover)) {
      sack_rxmit = true;
      off = static_cast<int32_t>(p->rxmit - tp->snd_una);
    } else {
      p = nullptr;
    }
  }
  uint8_t flags = tcp_outflags[tp->t_state];
  if (tp->t_flags & TF_NEEDFIN) flags |= TH_FIN;
  if (tp->t_flags & TF_FORCEDATA) {
    if (sendwin == 0) {
      sendwin = 1;
    } else {
      tcp_timer_activate(tp, TT_PERSIST, 0);
      tp->t_rxtshift = 0;
    }
  }
  long recwin, rcv_hiwat;
  {
    MutexLock l(&so->so_rcv.sb_mtx);
    recwin = std::max<long>(sbspace(&so->so_rcv), 0);
    rcv_hiwat = so->so_rcv.sb_hiwat;
  }
  sockbuf* sb = &so->so_snd;
  sb->sb_mtx.Lock();
  long avail = sbavail(sb);
  long used = sbused(sb);
  long len;
  if (sack_rxmit) {
    len = std::min<long>({sack_room, static_cast<int32_t>(p->end - p->rxmit),
                          static_cast<int32_t>(tp->snd_recover - p->rxmit)});
    sendalot = 1;
  } else if (sack_room >= 0) {
    // New data in SACK recovery: within the peer's window and the pipe.
    len = std::min<long>(std::min<long>(avail, tp->snd_wnd) - off, sack_room);
  } else {
    len = std::min(avail, sendwin) - off;
  }
  if ((flags & TH_SYN) && SEQ_GT(tp->snd_nxt, tp->snd_una)) {
    if (tp->t_state != TCPS_SYN_RECEIVED) flags &= ~TH_SYN;
    off--;
    len++;
  }
  // No data with a SYN (FreeBSD without TCP Fast Open).
  if (flags & TH_SYN) {
    len = 0;
    flags &= ~TH_FIN;
  }
  if (len < 0) {
    len = 0;
    if (sendwin == 0) {
      tcp_timer_activate(tp, TT_REXMT, 0);
      tp->t_rxtshift = 0;
      tp->snd_nxt = tp->snd_una;
      if (!tcp_timer_active(tp, TT_PERSIST)) tcp_setpersist(tp);
    }
  }
  // tcp_sndbuf_autoscale: one step of sendbuf_inc when the peer's window,
  // with a fudge of 5/4, is at least the buffer; the buffer is 7/8 full and
  // below sendbuf_max; and the send window covers what is queued but not
  // yet sent. With sendbuf_auto_lowat, SO_SNDLOWAT comes off both
  // thresholds.
  if (in.tcp_do_autosndbuf.load() && (sb->sb_flags & SB_AUTOSIZE)) {
    const long lowat = in.tcp_sendbuf_auto_lowat.load() ? sb->sb_lowat : 0;
    const long hiwat = sb->sb_hiwat;
    const long inflight = static_cast<int32_t>(tp->snd_nxt - tp->snd_una);
    if (static_cast<long>(tp->snd_wnd / 4 * 5) >= hiwat - lowat &&
        used >= hiwat / 8 * 7 - lowat && used < in.tcp_autosndbuf_max.load() &&
        sendwin >= used - inflight) {
      unsigned want = std::min<unsigned>(
          sb->sb_hiwat + in.tcp_autosndbuf_inc.load(),
          in.tcp_autosndbuf_max.load());
      if (sbreserve_locked(sb, want, k.net->maxsockbuf.load()) != 0)
        sb->sb_flags &= ~SB_AUTOSIZE;
    }
  }
  // TSO (FreeBSD's tcp_output): more than a segment goes to an interface
  // with TSO on as one packet of up to 64 KiB, which the NIC cuts into
  // t_maxseg segments. Not for SACK retransmissions, SYNs or offloaded
  // (TOE) connections. Plaintext NIC TLS records go as TSO packets too, as
  // with mlx5en: the NIC's TLS engine encrypts each segment it cuts.
  bool tso = len > tp->t_maxseg && !sack_rxmit && !(flags & TH_SYN) &&
             (tp->t_flags & (TF_TSO | TF_TOE)) == TF_TSO &&
             in.tcp_do_tso.load(std::memory_order_relaxed);
  if (tso) {
    const long tsomax = IP_MAXPACKET - static_cast<long>(sizeof(ip) + sizeof(tcphdr)) -
                        TCP_MAXOLEN;
    if (len > tsomax) {
      len = tsomax;
      sendalot = 1;
    }
  } else if (len > tp->t_maxseg) {
    len = tp->t_maxseg;
    sendalot = 1;
  }
  // NIC TLS (FreeBSD's tcp_m_copym with hw_tls): a packet carries one send
  // tag, so it never mixes plaintext records of two sessions, or records
  // with other data. hw_tls is the session whose plaintext (IFNET) records
  // this segment holds.
  ktls_session* hw_tls = nullptr;
  bool tls_clamped = false;
  if (len > 0 && sb->sb_tls_info != nullptr) {
    unsigned moff;
    mbuf* sm = sbsndptr_noadv(sb, static_cast<unsigned>(off), &moff);
    auto ident = [](const mbuf* x) {
      return (x->m_flags & M_EXTPG) ? x->m_epg_tls : nullptr;
    };
    hw_tls = ident(sm);
    long run = sm->m_len - moff;
    for (mbuf* x = sm->m_next; run < len && x != nullptr; x = x->m_next) {
      if (ident(x) != hw_tls) break;
      run += x->m_len;
    }
    if (run < len) {
      len = run;
      sendalot = 1;
      tls_clamped = true;
    }
  }
  if (SEQ_LT((sack_rxmit ? p->rxmit : tp->snd_nxt) + len, tp->snd_una + used))
    flags &= ~TH_FIN;

  if (recwin < rcv_hiwat / 4 && recwin < tp->t_maxseg)
    recwin = 0;
  if (recwin > static_cast<long>(TCP_MAXWIN) << tp->rcv_scale)
    recwin = static_cast<long>(TCP_MAXWIN) << tp->rcv_scale;
  if (SEQ_GT(tp->rcv_adv, tp->rcv_nxt) &&
      recwin < static_cast<long>(tp->rcv_adv - tp->rcv_nxt))
    recwin = tp->rcv_adv - tp->rcv_nxt;

  if (len) {
    if (len >= tp->t_maxseg || tls_clamped) goto send;
    if (sack_rxmit) goto send;
    if (!(tp->t_flags & TF_MORETOCOME) &&
        (idle || (tp->t_flags & TF_NODELAY)) && len + off >= avail &&
        !(tp->t_flags & TF_NOPUSH))
      goto send;
    if (tp->t_flags & TF_FORCEDATA) goto send;
    if (tp->max_sndwnd > 0 && len >= static_cast<long>(tp->max_sndwnd / 2))
      goto send;
    if (SEQ_LT(tp->snd_nxt, tp->snd_max)) goto send;
  }
  if (recwin > 0 && tp->t_state >= TCPS_ESTABLISHED) {
    long adv = recwin - static_cast<int32_t>(tp->rcv_adv - tp->rcv_nxt);
    long hiwat = rcv_hiwat;
    if (adv >= 2 * tp->t_maxseg &&
        (adv >= hiwat / 4 || recwin <= hiwat / 8 || hiwat <= 8 * tp->t_maxseg))
      goto send;
    if (2 * adv >= hiwat) goto send;
  }
  if (tp->t_flags & TF_ACKNOW) goto send;
  if (flags & (TH_SYN | TH_RST)) goto send;
  if (SEQ_GT(tp->snd_up, tp->snd_una)) goto send;
  if ((flags & TH_FIN) &&
      (!(tp->t_flags & TF_SENTFIN) || tp->snd_nxt == tp->snd_una))
    goto send;
  // Nothing to send now. Data waiting on a closed window gets the persist
  // timer unless the retransmit timer covers it.
  if (avail > off && !tcp_timer_active(tp, TT_REXMT) &&
      !tcp_timer_active(tp, TT_PERSIST)) {
    tp->t_rxtshift = 0;
    tcp_setpersist(tp);
  }
  sb->sb_mtx.Unlock();
  return 0;

send : {
  uint8_t opt[TCP_MAXOLEN];
  int optlen = 0;
  if (flags & TH_SYN) {
    tp->snd_nxt = tp->iss;
    int mss = tcp_mssopt(tp);
    opt[0] = TCPOPT_MAXSEG;
    opt[1] = TCPOLEN_MAXSEG;
    opt[2] = mss >> 8;
    opt[3] = mss & 0xff;
    optlen = 4;
    if ((tp->t_flags & TF_REQ_SCALE) &&
        (tp->t_state == TCPS_SYN_SENT || (tp->t_flags & TF_RCVD_SCALE))) {
      opt[4] = TCPOPT_NOP;
      opt[5] = TCPOPT_WINDOW;
      opt[6] = TCPOLEN_WINDOW;
      opt[7] = tp->request_r_scale;
      optlen = 8;
    }
    // SACK-permitted: on our SYN when enabled, on a SYN-ACK only if the
    // peer offered it (TF_SACK_PERMIT then still set).
    if (tp->t_flags & TF_SACK_PERMIT) {
      opt[optlen++] = TCPOPT_NOP;
      opt[optlen++] = TCPOPT_NOP;
      opt[optlen++] = TCPOPT_SACK_PERMITTED;
      opt[optlen++] = TCPOLEN_SACK_PERMITTED;
    }
  } else if ((tp->t_flags & TF_SACK_PERMIT) && tp->rcv_numsacks > 0 &&
             tp->t_state >= TCPS_ESTABLISHED) {
    // SACK blocks, the most recent first (RFC 2018).
    int n = std::min(tp->rcv_numsacks, TCP_MAX_SACK);
    opt[optlen++] = TCPOPT_NOP;
    opt[optlen++] = TCPOPT_NOP;
    opt[optlen++] = TCPOPT_SACK;
    opt[optlen++] = static_cast<uint8_t>(2 + n * TCPOLEN_SACK);
    for (int i = 0; i < n; i++) {
      uint32_t v[2] = {htonl(tp->sackblks[i].start), htonl(tp->sackblks[i].end)};
      memcpy(opt + optlen, v, sizeof v);
      optlen += sizeof v;
    }
    in.tcps.tcps_sack_send_blocks.add(1);
  }
  // Options take room from the data (tcp_output: len + optlen <= t_maxseg);
  // under TSO from every segment, and the packet holds whole segments only
  // unless it empties the send buffer.
  const long max_len = tp->t_maxseg - optlen;
  if (tso) {
    if (off + len < avail && len % max_len != 0) {
      len -= len % max_len;
      sendalot = 1;
      flags &= ~TH_FIN;
    }
    if (len <= max_len) tso = false;
  }
  if (!tso && len + optlen > tp->t_maxseg) {
    len = max_len;
    sendalot = 1;
    flags &= ~TH_FIN;
  }
  int hdrlen = sizeof(ip) + sizeof(tcphdr) + optlen;
  mbuf* m = m_gethdr(k, M_NOWAIT, MT_DATA);
  if (m == nullptr) {
    sb->sb_mtx.Unlock();
    error = ENOBUFS;
    goto out;
  }
  m->m_data += kMaxLinkHdr;
  m->m_len = hdrlen;
  if (len) {
    if (sack_rxmit || SEQ_LT(tp->snd_nxt, tp->snd_max)) {
      in.tcps.tcps_sndrexmitpack.add(1);
      in.tcps.tcps_sndrexmitbyte.add(len);
      if (sack_rxmit) {
        in.tcps.tcps_sack_rexmits.add(1);
        in.tcps.tcps_sack_rexmit_bytes.add(len);
      }
      tp->t_snd_rxt_bytes += len;
      // tcp_account_for_send(): too much retransmitted through a NIC that
      // must rebuild cipher state for every such segment -> back to SW.
      if (hw_tls != nullptr && tp->t_nic_ktls_xmit &&
          !tp->t_nic_ktls_xmit_dis) {
        uint64_t pct = (1000ULL * tp->t_snd_rxt_bytes) /
                       (10ULL * (tp->t_snd_rxt_bytes + tp->t_sndbytes));
        if (pct > k.ktls->ifnet_max_rexmit_pct.load()) {
          sb->sb_mtx.Unlock();
          ktls_disable_ifnet(tp);
          sb->sb_mtx.Lock();
        }
      }
    } else {
      in.tcps.tcps_sndpack.add(1);
      in.tcps.tcps_sndbyte.add(len);
      tp->t_sndbytes += len;
    }
    unsigned moff;
    mbuf* sm = sbsndptr_noadv(sb, off, &moff);
    // Small segments are copied behind the header, except from unmapped
    // (M_EXTPG) mbufs: sendfile and KTLS data stays by reference, so the
    // tail of a record never costs a copy (FreeBSD skips the copy for
    // NIC TLS records the same way: the NIC needs the records).
    if (len <= MHLEN - hdrlen - kMaxLinkHdr && !(sm->m_flags & M_EXTPG)) {
      m_copydata(sb->sb_mb, off, len, mtod(m) + hdrlen);
      m->m_len += len;
    } else {
      m->m_next = m_copym(sm, moff, len, M_NOWAIT);
      if (m->m_next == nullptr) {
        sb->sb_mtx.Unlock();
        m_freem(m);
        error = ENOBUFS;
        goto out;
      }
    }
    if (off + len == used) flags |= TH_PUSH;
  } else {
    if (tp->t_flags & TF_ACKNOW)
      in.tcps.tcps_sndacks.add(1);
    else if (flags & (TH_SYN | TH_FIN | TH_RST))
      in.tcps.tcps_sndctrl.add(1);
    else if (SEQ_GT(tp->snd_up, tp->snd_una))
      in.tcps.tcps_sndurg.add(1);
    else
      in.tcps.tcps_sndwinup.add(1);
  }
  sb->sb_mtx.Unlock();

  m->m_pkthdr.len = hdrlen + static_cast<int>(len);
  ip* iph = mtod<ip*>(m);
  memset(iph, 0, sizeof(ip) + sizeof(tcphdr));
  tcphdr* th = reinterpret_cast<tcphdr*>(iph + 1);
  iph->ip_len = htons(static_cast<uint16_t>(m->m_pkthdr.len));
  iph->ip_p = IPPROTO_TCP;
  iph->ip_ttl = inp->inp_ip_ttl;
  iph->ip_tos = inp->inp_ip_tos;
  iph->ip_src = inp->inp_laddr;
  iph->ip_dst = inp->inp_faddr;
  th->th_sport = inp->inp_lport;
  th->th_dport = inp->inp_fport;
  if (optlen) memcpy(th + 1, opt, optlen);
  th->th_off = (sizeof(tcphdr) + optlen) >> 2;

  // A retransmitted FIN reuses its sequence number.
  if ((flags & TH_FIN) && (tp->t_flags & TF_SENTFIN) &&
      tp->snd_nxt == tp->snd_max)
    tp->snd_nxt--;
  if (sack_rxmit)
    th->th_seq = htonl(p->rxmit);
  else if (len || (flags & (TH_SYN | TH_FIN)) || tcp_timer_active(tp, TT_PERSIST))
    th->th_seq = htonl(tp->snd_nxt);
  else
    th->th_seq = htonl(tp->snd_max);
  th->th_ack = htonl(tp->rcv_nxt);
  if (SEQ_GT(tp->snd_up, tp->snd_nxt)) {
    th->th_urp = htons(static_cast<uint16_t>(
        std::min<uint32_t>(tp->snd_up - tp->snd_nxt, 65535)));
    flags |= TH_URG;
  } else {
    tp->snd_up = tp->snd_una;
  }
  th->th_flags = flags;
  uint32_t win;
  if (flags & TH_SYN)
    win = static_cast<uint32_t>(std::min<long>(recwin, TCP_MAXWIN));
  else
    win = static_cast<uint32_t>(recwin >> tp->rcv_scale);
  th->th_win = htons(static_cast<uint16_t>(std::min<uint32_t>(win, TCP_MAXWIN)));
  if (win == 0)
    tp->t_flags |= TF_RXWIN0SENT;
  else
    tp->t_flags &= ~TF_RXWIN0SENT;
  // Checksum: the pseudo-header sum now; the rest is done by the interface
  // (if_hwassist) or by ip_output's in_delayed_cksum.
  th->th_sum = in_pseudo(iph->ip_src.s_addr, iph->ip_dst.s_addr,
                         htons(static_cast<uint16_t>(
                             m->m_pkthdr.len - sizeof(ip) + IPPROTO_TCP)));
  m->m_pkthdr.csum_flags = CSUM_TCP;
  m->m_pkthdr.csum_data = offsetof(tcphdr, th_sum);
  if (tso) {
    m->m_pkthdr.csum_flags |= CSUM_IP_TSO;
    m->m_pkthdr.tso_segsz = static_cast<uint16_t>(max_len);
  }

  if (sack_rxmit) {
    // A retransmission from the scoreboard leaves snd_nxt alone; Karn:
    // a resent segment gives no RTT sample.
    if (tp->t_rtttime != 0 && SEQ_GEQ(tp->t_rtseq, p->rxmit) &&
        SEQ_LT(tp->t_rtseq, p->rxmit + len))
      tp->t_rtttime = 0;
    tcp_sack_rexmit_done(tp, p, static_cast<int>(len));
    if (!tcp_timer_active(tp, TT_REXMT))
      tcp_timer_activate(tp, TT_REXMT, tp->t_rxtcur);
  } else if (!(tp->t_flags & TF_FORCEDATA) || !tcp_timer_active(tp, TT_PERSIST)) {
    tcp_seq startseq = tp->snd_nxt;
    if (flags & TH_SYN) tp->snd_nxt++;
    if (flags & TH_FIN) {
      tp->snd_nxt++;
      tp->t_flags |= TF_SENTFIN;
    }
    tp->snd_nxt += len;
    if (SEQ_GT(tp->snd_nxt, tp->snd_max)) {
      tp->snd_max = tp->snd_nxt;
      if (tp->t_rtttime == 0) {
        tp->t_rtttime = ticks_now();
        tp->t_rtseq = startseq;
        in.tcps.tcps_segstimed.add(1);
      }
    }
    if (!tcp_timer_active(tp, TT_REXMT) && tp->snd_nxt != tp->snd_una) {
      if (tcp_timer_active(tp, TT_PERSIST)) {
        tcp_timer_activate(tp, TT_PERSIST, 0);
        tp->t_rxtshift = 0;
      }
      tcp_timer_activate(tp, TT_REXMT, tp->t_rxtcur);
    }
  } else if (SEQ_GT(tp->snd_nxt + len, tp->snd_max)) {
    tp->snd_max = tp->snd_nxt + len;
  }
  if (recwin > 0 && SEQ_GT(tp->rcv_nxt + recwin, tp->rcv_adv))
    tp->rcv_adv = tp->rcv_nxt + recwin;
  tp->t_flags &= ~(TF_ACKNOW | TF_DELACK);
  tcp_timer_activate(tp, TT_DELACK, 0);
  in.tcps.tcps_sndtotal.add(1);
  {
    // FreeBSD's ip_output_send(): the packet of an IFNET record carries
    // its session's send tag (CSUM_SND_TAG); ip_output refuses it (EAGAIN)
    // if the route's interface is not the tag's, and a reset is queued.
    RefPtr<ktls_session> tls_ref;
    if (hw_tls != nullptr) {
      tls_ref = RefPtr<ktls_session>(hw_tls);
      m_snd_tag* mst = hw_tls->snd_tag;
      uint32_t rate = so->so_max_pacing_rate.load();
      if (mst != nullptr && mst->type() == IF_SND_TAG_TYPE_TLS_RATE_LIMIT &&
          rate != UINT32_MAX && rate != hw_tls->snd_tag_rate)
        ktls_modify_txrtlmt(hw_tls, rate);
      if (mst == nullptr) {
        m_freem(m);
        error = EAGAIN;
      } else {
        m->m_pkthdr.snd_tag = m_snd_tag_ref(mst);
        m->m_pkthdr.csum_flags |= CSUM_SND_TAG;
      }
    }
    if (error == 0 && (tp->t_flags & TF_TOE))
      error = tcp_offload_send(tp, m);  // the device transmits, not ip_output
    else if (error == 0)
      error = ip_output(k, m, (so->so_options.load() & SOF_BROADCAST) ? IP_ALLOWBROADCAST : 0);
    if (error == EMSGSIZE && tso) {
      // The interface stopped doing TSO since tcp_mss saw it: segments of
      // one MSS from now on; the retransmit timer resends this one.
      tp->t_flags &= ~TF_TSO;
      error = ENOBUFS;
    }
    if (error == EAGAIN && tls_ref) {
      // Nothing left: take the sequence advance back (FreeBSD does for
      // every failed send) so the data goes out again after the reset.
      // (A SACK retransmission left snd_nxt alone; the timer resends it.)
      if (!(flags & TH_SYN) && !sack_rxmit) tp->snd_nxt -= len;
      error = ktls_output_eagain(inp, tls_ref.get());
    }
  }
}
out:
  if (error) {
    if (error == ENOBUFS) {
      // The data stays queued; the retransmit timer resends it.
      if (!tcp_timer_active(tp, TT_REXMT) && !tcp_timer_active(tp, TT_PERSIST))
        tcp_timer_activate(tp, TT_REXMT, tp->t_rxtcur);
      tp->snd_cwnd = tp->t_maxseg;
      return 0;
    }
    if ((error == EHOSTUNREACH || error == ENETDOWN || error == ENETUNREACH ||
         error == EACCES) &&
        tp->t_state >= TCPS_SYN_SENT) {
      tp->t_softerror = error;
      return error;
    }
    return error;
  }
  if (sendalot) goto again;
  return 0;
}

}  // namespace uk
