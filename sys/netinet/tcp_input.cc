// TCP input. Mirrors FreeBSD's sys/netinet/tcp_input.c (tcp_input_with_port
// and tcp_do_segment): checksum, pcb lookup, passive open on a listener,
// SYN_SENT processing, RST acceptance (RFC 5961: only an exact sequence
// number resets; in-window RSTs get a challenge ACK), trimming to the
// window, ACK processing with RTT sampling, NewReno fast retransmit and
// recovery, window updates, in-order data and reassembly, delayed ACKs, FIN
// handling and TIME_WAIT.
#include <arpa/inet.h>

#include <algorithm>
#include <cerrno>

#include "sys/kern/kernel.h"
#include "sys/net/if_var.h"
#include "sys/netinet/ip.h"
#include "sys/netinet/tcp_offload.h"
#include "sys/netinet/tcp_var.h"

namespace uk {

namespace {

struct tcpopt {
  int mss = 0;
  int wscale = -1;
  bool sack_permitted = false;
  int nsacks = 0;
  sackblk sacks[TCP_MAX_SACK];
};

void tcp_dooptions(tcpopt* to, const uint8_t* cp, int cnt, bool syn) {
  for (; cnt > 0;) {
    int opt = cp[0];
    if (opt == TCPOPT_EOL) break;
    int optlen;
    if (opt == TCPOPT_NOP) {
      optlen = 1;
    } else {
      if (cnt < 2) break;
      optlen = cp[1];
      if (optlen < 2 || optlen > cnt) break;
    }
    if (syn && opt == TCPOPT_MAXSEG && optlen == TCPOLEN_MAXSEG)
      to->mss = (cp[2] << 8) | cp[3];
    if (syn && opt == TCPOPT_WINDOW && optlen == TCPOLEN_WINDOW)
      to->wscale = std::min<int>(cp[2], TCP_MAX_WINSHIFT);
    if (syn && opt == TCPOPT_SACK_PERMITTED && optlen == TCPOLEN_SACK_PERMITTED)
      to->sack_permitted = true;
    // SACK blocks only count on synchronized segments (tcp_dooptions).
    if (!syn && opt == TCPOPT_SACK && optlen > 2 && (optlen - 2) % TCPOLEN_SACK == 0) {
      int n = std::min((optlen - 2) / TCPOLEN_SACK, TCP_MAX_SACK);
      for (int i = 0; i < n; i++) {
        const uint8_t* b = cp + 2 + i * TCPOLEN_SACK;
        to->sacks[i].start = static_cast<tcp_seq>(b[0]) << 24 | b[1] << 16 | b[2] << 8 | b[3];
        to->sacks[i].end = static_cast<tcp_seq>(b[4]) << 24 | b[5] << 16 | b[6] << 8 | b[7];
      }
      to->nsacks = n;
    }
    cp += optlen;
    cnt -= optlen;
  }
}

void tcp_dropwithreset(kernel& k, in_addr src, in_addr dst, uint16_t sport,
                       uint16_t dport, uint8_t thflags, tcp_seq seq,
                       tcp_seq ack, int tlen) {
  InetState& in = V_inet(k);
  if (thflags & TH_RST) return;
  if (in.tcp_blackhole.load()) return;
  if (thflags & TH_ACK) {
    tcp_respond(k, nullptr, dst, src, dport, sport, 0, ack, TH_RST, 0);
  } else {
    if (thflags & TH_SYN) tlen++;
    if (thflags & TH_FIN) tlen++;
    tcp_respond(k, nullptr, dst, src, dport, sport, seq + tlen, 0,
                TH_RST | TH_ACK, 0);
  }
}

// Receive buffer autosizing (tcp_autorcvbuf): bytes received in order are
// counted over half a smoothed RTT; if they fill 3/8 of the buffer, the
// sender is window-limited and the buffer grows by half (up to
// net.inet.tcp.recvbuf_max), so the advertised window keeps ahead of the
// bandwidth-delay product.
void tcp_autorcvbuf(tcpcb* tp, socket* so, int tlen) ABSL_EXCLUSIVE_LOCKS_REQUIRED(so->so_rcv.sb_mtx) {
  InetState& in = *tp->t_inpcb->inp_pcbinfo;
  sockbuf* sb = &so->so_rcv;
  sb->sb_mtx.AssertHeld();
  if (!in.tcp_do_autorcvbuf.load() || !(sb->sb_flags & SB_AUTOSIZE)) return;
  const int64_t now = ticks_now();
  if (tp->t_rcvbuf_ts == 0) tp->t_rcvbuf_ts = now;
  if (tp->t_srtt != 0 && now - tp->t_rcvbuf_ts > (tp->t_srtt >> TCP_RTT_SHIFT) / 2) {
    unsigned max = in.tcp_autorcvbuf_max.load();
    if (tp->t_rcvbuf_cnt > sb->sb_hiwat / 2 / 4 * 3 && sb->sb_hiwat < max) {
      unsigned want = std::min(sb->sb_hiwat + sb->sb_hiwat / 2, max);
      if (sbreserve_locked(sb, want, in.k.net->maxsockbuf.load()) != 0)
        sb->sb_flags &= ~SB_AUTOSIZE;
    }
    // Restart the measurement.
    tp->t_rcvbuf_ts = now;
    tp->t_rcvbuf_cnt = 0;
  }
  tp->t_rcvbuf_cnt += tlen;
}

}  // namespace

void tcp_input(kernel& k, mbuf* m, int off0) {
  InetState& in = V_inet(k);
  in.tcps.tcps_rcvtotal.add(1);
  if (m->m_len < off0 + static_cast<int>(sizeof(tcphdr))) {
    if ((m = m_pullup(m, off0 + sizeof(tcphdr))) == nullptr) {
      in.tcps.tcps_rcvshort.add(1);
      return;
    }
  }
  ip* iph = mtod<ip*>(m);
  tcphdr* th = reinterpret_cast<tcphdr*>(mtod(m) + off0);
  int tlen = ntohs(iph->ip_len) - off0;
  if (tlen < static_cast<int>(sizeof(tcphdr))) {
    in.tcps.tcps_rcvshort.add(1);
    m_freem(m);
    return;
  }
  bool sum_ok;
  if ((m->m_pkthdr.csum_flags & (CSUM_DATA_VALID | CSUM_PSEUDO_HDR)) ==
      (CSUM_DATA_VALID | CSUM_PSEUDO_HDR)) {
    sum_ok = m->m_pkthdr.csum_data == 0xffff;
  } else {
    uint32_t s = in_pseudo(iph->ip_src.s_addr, iph->ip_dst.s_addr,
                           htons(static_cast<uint16_t>(tlen + IPPROTO_TCP)));
    s += in_cksum_mbuf(m, off0, tlen);
    sum_ok = in_cksum_fold(s) == 0xffff;
  }
  if (!sum_ok) {
    in.tcps.tcps_rcvbadsum.add(1);
    m_freem(m);
    return;
  }
  int thoff = th->th_off << 2;
  if (thoff < static_cast<int>(sizeof(tcphdr)) || thoff > tlen) {
    in.tcps.tcps_rcvbadoff.add(1);
    m_freem(m);
    return;
  }
  if (m->m_len < off0 + thoff) {
    if ((m = m_pullup(m, off0 + thoff)) == nullptr) {
      in.tcps.tcps_rcvshort.add(1);
      return;
    }
    iph = mtod<ip*>(m);
    th = reinterpret_cast<tcphdr*>(mtod(m) + off0);
  }
  tlen -= thoff;
  const in_addr src = iph->ip_src, dst = iph->ip_dst;
  const uint16_t sport = th->th_sport, dport = th->th_dport;
  tcp_seq seq = ntohl(th->th_seq);
  const tcp_seq ack = ntohl(th->th_ack);
  uint32_t tiwin = ntohs(th->th_win);
  uint8_t thflags = th->th_flags;
  tcpopt to;
  tcp_dooptions(&to, reinterpret_cast<const uint8_t*>(th + 1),
                thoff - sizeof(tcphdr), (thflags & TH_SYN) != 0);
  // Headers off: m is now the segment's data.
  m_adj(m, off0 + thoff);
  // NIC TLS RX: data the NIC decrypted keeps M_DECRYPTED through
  // reassembly into the KTLS chain (FreeBSD's sbappend_ktls_rx reads it
  // from the packet header, which is gone by the time data is appended).
  if (m->m_pkthdr.csum_flags & CSUM_TLS_DECRYPTED)
    for (mbuf* n = m; n != nullptr; n = n->m_next) n->m_flags |= M_DECRYPTED;

  RefPtr<inpcb> inpref = in_pcblookup(&in, src, sport, dst, dport, true);
  if (!inpref) {
    in.tcps.tcps_noport.add(1);
    tcp_dropwithreset(k, src, dst, sport, dport, thflags, seq, ack, tlen);
    m_freem(m);
    return;
  }
  inpcb* inp = inpref.get();
  inp->inp_lock.Lock();
  tcpcb* tp = intotcpcb(inp);
  if ((inp->inp_flags.load() & (INP_DROPPED | INP_FREED)) || tp == nullptr ||
      tp->t_state == TCPS_CLOSED) {
    inp_unlock(inp);
    tcp_dropwithreset(k, src, dst, sport, dport, thflags, seq, ack, tlen);
    m_freem(m);
    return;
  }
  // tp->t_inpcb is inp: tell the analysis the lock it holds is that one.
  tp->t_inpcb->inp_lock.AssertHeld();
  socket* so = inp->inp_socket;
  bool needoutput = false;
  bool ourfinisacked = false;
  bool sack = false;
  bool sack_changed = false;  // this ACK's SACK blocks told something new

  if (tp->t_state == TCPS_LISTEN) {
    if (thflags & TH_RST) goto drop;
    if (thflags & TH_ACK) goto dropwithreset;
    if (!(thflags & TH_SYN) || so == nullptr) goto drop;
    {
      RefPtr<socket> so2 = sonewconn(so);
      if (!so2) {
        in.tcps.tcps_listendrop.add(1);
        goto drop;
      }
      inpcb* inp2 = so2->so_pcb;
      inp2->inp_lock.Lock();
      if (in_pcbinshash_conn(inp2, dst, dport, src, sport) != 0) {
        inp_unlock(inp2);
        soabort(so2.get());
        goto drop;
      }
      tcpcb* tp2 = intotcpcb(inp2);
      tp2->t_inpcb->inp_lock.AssertHeld();
      tcp_state_change(tp2, TCPS_SYN_RECEIVED);
      tp2->irs = seq;
      tp2->rcv_nxt = seq + 1;
      tp2->rcv_adv = tp2->rcv_nxt;
      tp2->iss = tcp_new_isn(k);
      tp2->snd_una = tp2->snd_nxt = tp2->snd_max = tp2->snd_recover = tp2->iss;
      tp2->snd_up = tp2->snd_fack = tp2->iss;
      // SACK only when both ends want it (syncache's SCF_SACK).
      if (!to.sack_permitted) tp2->t_flags &= ~TF_SACK_PERMIT;
      tp2->t_user_maxseg = tp->t_user_maxseg;
      tp2->t_flags |= tp->t_flags & TF_NODELAY;
      tcp_mss(tp2, to.mss);
      if ((tp2->t_flags & TF_REQ_SCALE) && to.wscale >= 0) {
        tp2->t_flags |= TF_RCVD_SCALE;
        tp2->snd_scale = static_cast<uint8_t>(to.wscale);
        while (tp2->request_r_scale < TCP_MAX_WINSHIFT &&
               (static_cast<unsigned>(TCP_MAXWIN) << tp2->request_r_scale) <
                   static_cast<unsigned>(k.net->maxsockbuf.load()))
          tp2->request_r_scale++;
        tp2->rcv_scale = tp2->request_r_scale;
      } else {
        tp2->t_flags &= ~TF_REQ_SCALE;
      }
      tp2->snd_wnd = tiwin;
      tp2->snd_wl1 = seq;
      tp2->t_rcvtime = ticks_now();
      tp2->t_flags |= TF_ACKNOW;
      tcp_timer_activate(tp2, TT_KEEP, in.tcp_keepinit.load());
      // A SYN that came in through a TOE-enabled interface: the device
      // takes the connection from here (FreeBSD's toe_syncache_add).
      tcp_offload_passive(tp2, m->m_pkthdr.rcvif);
      tcp_output(tp2);
      inp_unlock(inp2);
    }
    inp_unlock(inp);
    m_freem(m);
    return;
  }

  tp->t_rcvtime = ticks_now();
  if (tp->t_state >= TCPS_ESTABLISHED && so &&
      (so->so_options.load() & SOF_KEEPALIVE))
    tcp_timer_activate(tp, TT_KEEP, in.tcp_keepidle.load());
  if (!(thflags & TH_SYN)) tiwin <<= tp->snd_scale;

  if (tp->t_state == TCPS_SYN_SENT) {
    if ((thflags & TH_ACK) &&
        (SEQ_LEQ(ack, tp->iss) || SEQ_GT(ack, tp->snd_max)))
      goto dropwithreset;
    if ((thflags & (TH_ACK | TH_RST)) == (TH_ACK | TH_RST)) {
      tcp_drop(tp, ECONNREFUSED);
      goto drop;
    }
    if (thflags & TH_RST) goto drop;
    if (!(thflags & TH_SYN)) goto drop;
    tp->irs = seq;
    tp->rcv_nxt = seq + 1;
    tp->rcv_adv = tp->rcv_nxt;
    tcp_mss(tp, to.mss);
    if (!to.sack_permitted) tp->t_flags &= ~TF_SACK_PERMIT;
    if ((tp->t_flags & TF_REQ_SCALE) && to.wscale >= 0) {
      tp->t_flags |= TF_RCVD_SCALE;
      tp->snd_scale = static_cast<uint8_t>(to.wscale);
      tp->rcv_scale = tp->request_r_scale;
    } else {
      tp->rcv_scale = 0;
    }
    if (thflags & TH_ACK) {
      tp->snd_una++;  // our SYN is acknowledged
      if (tp->t_rtttime) tcp_xmit_timer(tp, static_cast<int>(ticks_now() - tp->t_rtttime));
      in.tcps.tcps_connects.add(1);
      tcp_state_change(tp, TCPS_ESTABLISHED);
      tp->snd_cwnd = tp->t_maxseg * in.tcp_initcwnd_segments.load();
      tp->snd_wnd = tiwin;
      tp->max_sndwnd = tiwin;
      tp->snd_wl1 = seq;
      tp->snd_wl2 = ack;
      tp->t_rxtshift = 0;
      tcp_timer_activate(tp, TT_REXMT, 0);
      tcp_timer_activate(tp, TT_KEEP,
                         (so && (so->so_options.load() & SOF_KEEPALIVE))
                             ? in.tcp_keepidle.load()
                             : 0);
      tp->t_flags |= TF_ACKNOW;
      if (so) soisconnected(so);
      needoutput = true;
    } else {
      tp->t_flags |= TF_ACKNOW;
      tcp_state_change(tp, TCPS_SYN_RECEIVED);
      tcp_timer_activate(tp, TT_REXMT, 0);
    }
    seq++;  // the SYN
    thflags &= ~TH_SYN;
    if (tlen > 0 || (thflags & TH_FIN)) goto dodata;
    goto check_output;
  }

  // RST: accepted only with the exact next sequence number (RFC 5961).
  if (thflags & TH_RST) {
    if (seq == tp->rcv_nxt) {
      switch (tp->t_state) {
        case TCPS_SYN_RECEIVED:
          if (so) so->so_error.store(ECONNREFUSED);
          tcp_close(tp);
          break;
        case TCPS_ESTABLISHED:
        case TCPS_FIN_WAIT_1:
        case TCPS_FIN_WAIT_2:
        case TCPS_CLOSE_WAIT:
          if (so) so->so_error.store(ECONNRESET);
          in.tcps.tcps_drops.add(1);
          tcp_close(tp);
          break;
        default:
          tcp_close(tp);
          break;
      }
    } else if (SEQ_GT(seq, tp->rcv_nxt) &&
               SEQ_LT(seq, tp->rcv_nxt + std::max<uint32_t>(tp->rcv_wnd, 1) +
                               static_cast<uint32_t>(tcp_rcv_space(tp)))) {
      in.tcps.tcps_badrst.add(1);
      goto dropafterack;
    }
    goto drop;
  }
  if (tp->t_state == TCPS_TIME_WAIT) {
    // tcp_twcheck: a retransmitted FIN is ACKed again and restarts 2MSL.
    if (thflags & TH_SYN) goto drop;
    if (thflags & TH_FIN) {
      bool local = in_localip(k, inp->inp_faddr);
      int msl = local ? in.tcp_msl_local.load() : in.tcp_msl.load();
      tcp_timer_activate(tp, TT_2MSL, 2 * static_cast<int64_t>(std::max(msl, 1)));
    }
    if (tlen > 0 || (thflags & TH_FIN)) goto dropafterack;
    goto drop;
  }
  if ((thflags & TH_SYN) && tp->t_state != TCPS_SYN_RECEIVED) {
    // A SYN on a synchronized connection: challenge ACK.
    goto dropafterack;
  }
  {
    int todrop = static_cast<int32_t>(tp->rcv_nxt - seq);
    if (todrop > 0) {
      if (thflags & TH_SYN) {
        thflags &= ~TH_SYN;
        seq++;
        todrop--;
      }
      if (todrop > tlen || (todrop == tlen && !(thflags & TH_FIN))) {
        thflags &= ~TH_FIN;
        tp->t_flags |= TF_ACKNOW;
        todrop = tlen;
        in.tcps.tcps_rcvduppack.add(1);
        in.tcps.tcps_rcvdupbyte.add(todrop);
      } else {
        in.tcps.tcps_rcvpartduppack.add(1);
        in.tcps.tcps_rcvpartdupbyte.add(todrop);
      }
      if (todrop > 0) m_adj(m, todrop);
      seq += todrop;
      tlen -= todrop;
    }
  }
  // New data after the user closed and we sent our FIN: reset the peer.
  if (so != nullptr && (so->so_state.load() & SS_NOFDREF) &&
      tp->t_state > TCPS_CLOSE_WAIT && tlen) {
    tcp_close(tp);
    in.tcps.tcps_rcvafterclose.add(1);
    goto dropwithreset;
  }
  {
    long rwin = std::max<long>(tcp_rcv_space(tp),
                               static_cast<int32_t>(tp->rcv_adv - tp->rcv_nxt));
    int todrop = static_cast<int32_t>(seq + tlen - (tp->rcv_nxt + rwin));
    if (todrop > 0) {
      in.tcps.tcps_rcvpackafterwin.add(1);
      if (todrop >= tlen) {
        in.tcps.tcps_rcvbyteafterwin.add(tlen);
        if (rwin == 0 && seq == tp->rcv_nxt) {
          tp->t_flags |= TF_ACKNOW;
          in.tcps.tcps_rcvwinprobe.add(1);
        } else {
          goto dropafterack;
        }
      } else {
        in.tcps.tcps_rcvbyteafterwin.add(todrop);
      }
      m_adj(m, -todrop);
      tlen -= todrop;
      thflags &= ~(TH_PUSH | TH_FIN);
    }
  }
  if (!(thflags & TH_ACK)) goto drop;

  // ACK processing.
  if (tp->t_state == TCPS_SYN_RECEIVED) {
    if (SEQ_GT(tp->snd_una, ack) || SEQ_GT(ack, tp->snd_max)) goto dropwithreset;
    in.tcps.tcps_connects.add(1);
    in.tcps.tcps_accepts.add(1);
    tcp_state_change(tp, TCPS_ESTABLISHED);
    tp->snd_una++;  // the SYN
    if (tp->t_rtttime && SEQ_GT(ack, tp->t_rtseq))
      tcp_xmit_timer(tp, static_cast<int>(ticks_now() - tp->t_rtttime));
    tp->snd_cwnd = tp->t_maxseg * in.tcp_initcwnd_segments.load();
    tp->snd_wnd = tiwin;
    tp->max_sndwnd = tiwin;
    tp->snd_wl1 = seq;
    tp->snd_wl2 = ack;
    tcp_timer_activate(tp, TT_KEEP,
                       (so && (so->so_options.load() & SOF_KEEPALIVE))
                           ? in.tcp_keepidle.load()
                           : 0);
    if (so) soisconnected(so);
    if (tp->t_flags & TF_NEEDFIN) {
      tcp_state_change(tp, TCPS_FIN_WAIT_1);
      tp->t_flags &= ~TF_NEEDFIN;
    }
    tcp_reass(tp, 0, 0, &tlen, nullptr);
  }
  // The SACK scoreboard learns from every ACK before the duplicate-ACK and
  // recovery logic looks at it (tcp_sack_doack).
  sack = (tp->t_flags & TF_SACK_PERMIT) != 0;
  if (sack && SEQ_LEQ(ack, tp->snd_max) &&
      (to.nsacks > 0 || !tp->snd_holes.empty()))
    sack_changed = tcp_sack_doack(tp, to.sacks, to.nsacks, ack);
  if (SEQ_LEQ(ack, tp->snd_una)) {
    // With SACK a duplicate ACK counts even if the window moved: the
    // receiver's window changes as the application reads.
    if (tlen == 0 && (tiwin == tp->snd_wnd || sack) && !(thflags & TH_FIN) &&
        tp->snd_max != tp->snd_una) {
      in.tcps.tcps_rcvdupack.add(1);
      // As FreeBSD, an old ACK, or on a SACK connection one that brings no
      // new SACK information, does not count as a duplicate: it goes on to
      // the window update. (Counted, a pure window update - the receiver's
      // application read and the window opened - took the limited-transmit
      // path, which drops the segment, and the sender kept the old window
      // until the receiver's delayed ACK 40 ms later.)
      if (ack != tp->snd_una || (sack && !sack_changed)) goto step6;
      if (!tcp_timer_active(tp, TT_REXMT)) {
        tp->t_dupacks = 0;
      } else if (++tp->t_dupacks > 3 || (tp->t_flags & TF_FASTRECOVERY)) {
        if (tp->t_flags & TF_FASTRECOVERY) {
          // NewReno inflates cwnd by the segment that left the network;
          // with SACK the scoreboard already shrank the pipe.
          if (!sack) tp->snd_cwnd += tp->t_maxseg;
          tcp_output(tp);
        }
        goto drop;
      } else if (tp->t_dupacks == 3 ||
                 (sack && tcp_sack_sacked_bytes(tp) >= 3u * tp->t_maxseg)) {
        // Three duplicate ACKs, or (RFC 6675 IsLost(snd_una)) three
        // segments' worth SACKed above snd_una: ACKs that did not count as
        // duplicates, or losses left over from the last episode.
        if (SEQ_LEQ(ack, tp->snd_recover)) {
          // NewReno: no new recovery before the previous one's end.
          tp->t_dupacks = 0;
        } else {
          uint32_t win = std::min(tp->snd_wnd, tp->snd_cwnd) / 2 / tp->t_maxseg;
          if (win < 2) win = 2;
          tp->snd_ssthresh = win * tp->t_maxseg;
          tp->snd_recover = tp->snd_max;
          tp->t_bytes_acked = 0;
          tp->t_flags |= TF_FASTRECOVERY;
          in.tcps.tcps_fastrexmt.add(1);
          in.tcps.tcps_fastrecovery.add(1);
          tcp_timer_activate(tp, TT_REXMT, 0);
          tp->t_rtttime = 0;
          if (sack) {
            // RFC 6675: the first hole goes out now whatever the pipe;
            // then cwnd = ssthresh and the pipe decides.
            in.tcps.tcps_sack_recovery_episode.add(1);
            tp->snd_cwnd = tcp_sack_pipe(tp) + tp->t_maxseg;
            tcp_output(tp);
            tp->snd_cwnd = tp->snd_ssthresh;
            tcp_output(tp);
            goto drop;
          }
          tcp_seq onxt = tp->snd_nxt;
          tp->snd_nxt = ack;
          tp->snd_cwnd = tp->t_maxseg;
          tcp_output(tp);
          tp->snd_cwnd = tp->snd_ssthresh + tp->t_maxseg * tp->t_dupacks;
          if (SEQ_GT(onxt, tp->snd_nxt)) tp->snd_nxt = onxt;
          goto drop;
        }
      } else if (in.tcp_do_rfc3042.load()) {
        // Limited transmit (RFC 3042, as FreeBSD): each of the first two
        // duplicate ACKs may send one new segment beyond cwnd.
        if (tp->t_dupacks == 1) tp->snd_limited = 0;
        uint32_t ocwnd = tp->snd_cwnd;
        tcp_seq omax = tp->snd_max;
        tp->snd_cwnd = (tp->snd_nxt - tp->snd_una) +
                       (tp->t_dupacks - tp->snd_limited) * tp->t_maxseg;
        tcp_output(tp);
        uint32_t sent = tp->snd_max - omax;
        if (sent > static_cast<uint32_t>(tp->t_maxseg))
          tp->snd_limited = 2;
        else if (sent > 0)
          tp->snd_limited++;
        if (sent > 0) in.tcps.tcps_limitedxmit.add(1);
        tp->snd_cwnd = ocwnd;
        goto drop;
      }
    } else {
      tp->t_dupacks = 0;
    }
    goto step6;
  }
  {
    if (SEQ_GT(ack, tp->snd_max)) {
      in.tcps.tcps_rcvacktoomuch.add(1);
      goto dropafterack;
    }
    int acked = static_cast<int32_t>(ack - tp->snd_una);
    if (tp->t_flags & TF_FASTRECOVERY) {
      if (SEQ_LT(ack, tp->snd_recover)) {
        if (sack) {
          // Partial ACK with SACK (tcp_sack_partialack): the scoreboard
          // already moved; restart the timer and let the pipe send.
          needoutput = true;
        } else {
          // Partial ACK (RFC 6582): retransmit the next hole, deflate.
          tcp_timer_activate(tp, TT_REXMT, 0);
          tp->t_rtttime = 0;
          tcp_seq onxt = tp->snd_nxt;
          uint32_t ocwnd = tp->snd_cwnd;
          tp->snd_nxt = ack;
          // snd_una is not advanced yet: one segment beyond the ACK point.
          tp->snd_cwnd = tp->t_maxseg + acked;
          tcp_output(tp);
          tp->snd_cwnd = ocwnd;
          if (SEQ_GT(onxt, tp->snd_nxt)) tp->snd_nxt = onxt;
          tp->snd_cwnd = tp->snd_cwnd > static_cast<uint32_t>(acked)
                             ? tp->snd_cwnd - acked + tp->t_maxseg
                             : tp->t_maxseg;
        }
      } else {
        uint32_t flight = tp->snd_max - ack;
        tp->snd_cwnd = std::min(tp->snd_ssthresh, flight + tp->t_maxseg);
        tp->t_flags &= ~TF_FASTRECOVERY;
      }
    }
    tp->t_dupacks = 0;
    in.tcps.tcps_rcvackpack.add(1);
    in.tcps.tcps_rcvackbyte.add(acked);
    if (tp->t_rtttime && SEQ_GT(ack, tp->t_rtseq))
      tcp_xmit_timer(tp, static_cast<int>(ticks_now() - tp->t_rtttime));
    if (ack == tp->snd_max) {
      tcp_timer_activate(tp, TT_REXMT, 0);
      needoutput = true;
    } else if (!tcp_timer_active(tp, TT_PERSIST)) {
      tcp_timer_activate(tp, TT_REXMT, tp->t_rxtcur);
    }
    if (acked == 0) goto step6;
    if (!(tp->t_flags & TF_FASTRECOVERY)) {
      uint32_t incr;
      if (tp->snd_cwnd > tp->snd_ssthresh) {
        // Congestion avoidance with appropriate byte counting (RFC 3465,
        // FreeBSD's newreno_ack_received): one segment per cwnd of bytes
        // acknowledged, whatever the ACK frequency.
        tp->t_bytes_acked += acked;
        incr = 0;
        if (tp->t_bytes_acked >= tp->snd_cwnd) {
          tp->t_bytes_acked -= tp->snd_cwnd;
          incr = tp->t_maxseg;
        }
      } else {
        incr = std::min<uint32_t>(acked, 2 * tp->t_maxseg);
      }
      tp->snd_cwnd = std::min<uint32_t>(tp->snd_cwnd + incr,
                                        static_cast<uint32_t>(TCP_MAXWIN) << tp->snd_scale);
    }
    mbuf* mfree = nullptr;
    if (so != nullptr) {
      so->so_snd.sb_mtx.Lock();
      unsigned used = sbused(&so->so_snd);
      if (static_cast<unsigned>(acked) > used) {
        tp->snd_wnd -= std::min<uint32_t>(tp->snd_wnd, used);
        mfree = sbcut_locked(&so->so_snd, used);
        ourfinisacked = true;
      } else {
        mfree = sbcut_locked(&so->so_snd, acked);
        tp->snd_wnd -= std::min<uint32_t>(tp->snd_wnd, acked);
        ourfinisacked = false;
      }
      sowwakeup_acked_locked(so);
    } else {
      ourfinisacked = (tp->t_flags & TF_SENTFIN) && ack == tp->snd_max;
    }
    m_freem(mfree);
    tp->snd_una = ack;
    if (SEQ_LT(tp->snd_nxt, tp->snd_una)) tp->snd_nxt = tp->snd_una;
    // The highest SACKed byte never trails snd_una, or sequence space
    // could wrap between the two on a long transfer without SACK blocks.
    if (SEQ_LT(tp->snd_fack, tp->snd_una)) tp->snd_fack = tp->snd_una;
    // Keep snd_recover just behind the ACK point outside recovery, so a
    // later run of duplicate ACKs may start a new episode while one that
    // belongs to the last episode (ack <= snd_recover) may not (RFC 6582),
    // whatever the sequence space has wrapped to.
    if (!(tp->t_flags & TF_FASTRECOVERY) && SEQ_GT(ack - 1, tp->snd_recover))
      tp->snd_recover = ack - 1;
    switch (tp->t_state) {
      case TCPS_FIN_WAIT_1:
        if (ourfinisacked) {
          if (so != nullptr) {
            bool cant;
            {
              MutexLock l(&so->so_rcv.sb_mtx);
              cant = so->so_rcv.sb_state & SBS_CANTRCVMORE;
            }
            if (cant) {
              soisdisconnected(so);
              tcp_timer_activate(tp, TT_2MSL, in.tcp_finwait2_timeout.load());
            }
          }
          tcp_state_change(tp, TCPS_FIN_WAIT_2);
        }
        break;
      case TCPS_CLOSING:
        if (ourfinisacked) {
          tcp_twstart(tp);
          goto drop;
        }
        break;
      case TCPS_LAST_ACK:
        if (ourfinisacked) {
          tcp_close(tp);
          goto drop;
        }
        break;
    }
  }
step6:
  if ((thflags & TH_ACK) &&
      (SEQ_LT(tp->snd_wl1, seq) ||
       (tp->snd_wl1 == seq &&
        (SEQ_LT(tp->snd_wl2, ack) ||
         (tp->snd_wl2 == ack && tiwin > tp->snd_wnd))))) {
    if (tlen == 0 && tp->snd_wl2 == ack && tiwin > tp->snd_wnd)
      in.tcps.tcps_rcvwinupd.add(1);
    tp->snd_wnd = tiwin;
    tp->snd_wl1 = seq;
    tp->snd_wl2 = ack;
    if (tp->snd_wnd > tp->max_sndwnd) tp->max_sndwnd = tp->snd_wnd;
    needoutput = true;
  }
dodata:
  if ((tlen || (thflags & TH_FIN)) && tp->t_state < TCPS_TIME_WAIT &&
      tp->t_state != TCPS_CLOSE_WAIT && tp->t_state != TCPS_CLOSING &&
      tp->t_state != TCPS_LAST_ACK) {
    if (seq == tp->rcv_nxt && tp->t_segq.empty() &&
        tp->t_state >= TCPS_ESTABLISHED) {
      if (in.tcp_delack_enabled.load() && !tcp_timer_active(tp, TT_DELACK) &&
          !(tp->t_flags & TF_RXWIN0SENT) && tlen <= tp->t_maxseg && tlen > 0) {
        tp->t_flags |= TF_DELACK;
        tcp_timer_activate(tp, TT_DELACK, in.tcp_delacktime.load());
      } else {
        tp->t_flags |= TF_ACKNOW;
      }
      tp->rcv_nxt += tlen;
      thflags &= TH_FIN;
      in.tcps.tcps_rcvpack.add(1);
      in.tcps.tcps_rcvbyte.add(tlen);
      if (so != nullptr && tlen > 0) {
        so->so_rcv.sb_mtx.Lock();
        if (so->so_rcv.sb_state & SBS_CANTRCVMORE) {
          so->so_rcv.sb_mtx.Unlock();
          m_freem(m);
        } else {
          m->m_flags &= ~M_PKTHDR;
          sbappendstream_locked(&so->so_rcv, m, 0);
          tcp_autorcvbuf(tp, so, tlen);
          sorwakeup_locked(so);
        }
      } else {
        m_freem(m);
      }
      m = nullptr;
    } else {
      if (tlen > 0) {
        thflags = tcp_reass(tp, thflags, seq, &tlen, m);
      } else {
        m_freem(m);
        if (seq != tp->rcv_nxt) thflags &= ~TH_FIN;
      }
      m = nullptr;
      tp->t_flags |= TF_ACKNOW;
    }
  } else {
    m_freem(m);
    m = nullptr;
    thflags &= ~TH_FIN;
  }
  if (thflags & TH_FIN) {
    if (tp->t_state != TCPS_CLOSE_WAIT && tp->t_state != TCPS_CLOSING &&
        tp->t_state != TCPS_LAST_ACK && tp->t_state != TCPS_TIME_WAIT) {
      if (so) socantrcvmore(so);
      tp->t_flags |= TF_ACKNOW;
      tp->rcv_nxt++;
    }
    switch (tp->t_state) {
      case TCPS_SYN_RECEIVED:
      case TCPS_ESTABLISHED:
        tcp_state_change(tp, TCPS_CLOSE_WAIT);
        break;
      case TCPS_FIN_WAIT_1:
        tcp_state_change(tp, TCPS_CLOSING);
        break;
      case TCPS_FIN_WAIT_2:
        tp->t_flags |= TF_ACKNOW;
        tcp_output(tp);
        tcp_twstart(tp);
        inp_unlock(inp);
        return;
    }
  }
check_output:
  if (needoutput || (tp->t_flags & TF_ACKNOW)) tcp_output(tp);
  inp_unlock(inp);
  m_freem(m);
  return;
dropafterack:
  tp->t_flags |= TF_ACKNOW;
  tcp_output(tp);
  inp_unlock(inp);
  m_freem(m);
  return;
dropwithreset:
  inp_unlock(inp);
  tcp_dropwithreset(k, src, dst, sport, dport, thflags, seq, ack, tlen);
  m_freem(m);
  return;
drop:
  inp_unlock(inp);
  m_freem(m);
}

}  // namespace uk
