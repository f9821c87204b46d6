# HDLC link behaviour (IEC 62056-46): connection states, addressing, sequence numbers,
# segmentation both ways, windows, retransmission, FRMR and timeouts. Every scenario is fed
# whole, in halves and byte by byte (hdlc_util.MODES) unless the test is about timing.
from hdlc import NDM, NRM, ticks_diff
from hdlc_util import (
    C1,
    C16,
    DISC,
    LLC_REQ,
    LLC_RSP,
    MODES,
    SNRM,
    SRV,
    UI,
    EchoApp,
    connect,
    feed,
    frame,
    i_ctrl,
    new_link,
    parse,
    rr,
    server_addr,
)


def _one(out):
    assert len(out) == 1, out
    return parse(out[0])


def _params(max_tx, max_rx, wtx, wrx):
    # SNRM information field as a client proposes it (values seen from the client).
    body = bytes([5, 2, max_tx >> 8, max_tx & 0xFF, 6, 2, max_rx >> 8, max_rx & 0xFF])
    body += bytes([7, 4, 0, 0, 0, wtx, 8, 4, 0, 0, 0, wrx])
    return bytes([0x81, 0x80, len(body)]) + body


# **** connection states ****


def test_ndm_answers_dm_to_everything_but_snrm():
    for mode in MODES:
        link = new_link()
        for ctrl in (i_ctrl(0, 0), rr(0), DISC):
            info = LLC_REQ + b"\x01" if ctrl & 1 == 0 else b""
            seg, dst, src, c, _ = _one(feed(link, frame(SRV, C16, ctrl, info), mode))
            assert (dst, src, c) == (b"\x21", SRV, 0x1F), (mode, hex(ctrl), hex(c))
        assert link.state == NDM


def test_connect_disconnect_cycle_notifies_upper_layer():
    app = EchoApp()
    link = new_link(app)
    for mode in MODES:
        connect(link)
        assert link.state == NRM and link.client == C16
        _, _, _, c, info = _one(feed(link, frame(SRV, C16, DISC), mode))
        assert c == 0x73 and info == b""
        assert link.state == NDM
    assert app.lost == 3


def test_snrm_while_connected_resets_the_link():
    app = EchoApp()
    link = new_link(app)
    connect(link)
    feed(link, frame(SRV, C16, i_ctrl(0, 0), LLC_REQ + b"\x01\x02"))
    assert link.vs == 1 and link.vr == 1
    connect(link)
    assert app.lost == 1 and link.vs == 0 and link.vr == 0 and link.state == NRM


def test_other_client_while_connected_gets_dm_and_link_survives():
    link = new_link()
    connect(link, client=C16)
    _, dst, _, c, _ = _one(feed(link, frame(SRV, C1, i_ctrl(0, 0), LLC_REQ + b"\x01")))
    assert dst == bytes([C1]) and c == 0x1F
    _, _, _, c, info = _one(feed(link, frame(SRV, C16, i_ctrl(0, 0), LLC_REQ + b"\x09")))
    assert c == i_ctrl(0, 1) and info == LLC_RSP + b"\x09"


def test_snrm_from_another_client_takes_over():
    app = EchoApp()
    link = new_link(app)
    connect(link, client=C16)
    connect(link, client=C1)
    assert link.client == C1 and app.lost == 1


# **** addressing ****


def test_frames_for_other_meters_are_ignored():
    for mode in MODES:
        link = new_link(unit_id=17)
        for dst in (server_addr(1, 18), server_addr(2, 17), server_addr(1, 18, 2)):
            assert feed(link, frame(dst, C16, SNRM), mode) == []
        assert link.state == NDM and link.de.frames == 3


def test_one_two_and_four_byte_addresses_are_mirrored():
    for size in (1, 2, 4):
        link = new_link(unit_id=17)
        dst = server_addr(1, 17, size)
        _, d, s, c, _ = _one(feed(link, frame(dst, C16, SNRM)))
        assert (d, s, c) == (bytes([C16]), dst, 0x73)


def test_broadcast_ui_is_taken_and_never_answered():
    for dst in (server_addr(0x3FFF, 0x3FFF), server_addr(1, 0x3FFF), server_addr(0x7F, 0, 1)):
        app = EchoApp()
        link = new_link(app)
        assert feed(link, frame(dst, C16, UI, LLC_REQ + b"\xAA\xBB")) == []
        assert app.ui == 1 and app.last_len == 2
        # Other broadcast frames are not answered either and do not connect.
        assert feed(link, frame(dst, C16, SNRM)) == []
        assert link.state == NDM


def test_unit_id_above_127_on_four_bytes():
    link = new_link(unit_id=10326)
    dst = server_addr(1, 10326)
    assert dst == b"\x00\x02\xa0\xad"  # as in a published GXDLMSDirector log
    connect(link, dst=dst)
    assert link.state == NRM


# **** negotiation ****


def test_negotiation_takes_the_smaller_value_each_way():
    link = new_link(max_info_tx=512, max_info_rx=256, window_tx=7, window_rx=3)
    ua = connect(link, info=_params(2000, 100, 7, 7))
    # Client transmits up to 2000 -> we receive min(2000, 256); client receives 100 -> we send
    # 100; client window tx 7 -> our rx window min(7, 3); its rx window 7 -> our tx min(7, 7).
    assert (link.max_rx, link.max_tx, link.win_rx, link.win_tx) == (256, 100, 3, 7)
    assert ua == bytes([0x81, 0x80, 0x13, 5, 1, 100, 6, 2, 1, 0, 7, 4, 0, 0, 0, 7, 8, 4, 0, 0, 0, 3])


def test_negotiation_floor_and_partial_proposals():
    link = new_link()
    connect(link, info=bytes([0x81, 0x80, 0x03, 0x06, 0x01, 0x05]))  # rx 5 only
    assert link.max_tx == 16 and link.max_rx == 128
    connect(link, info=bytes([0x81, 0x80, 0x00]))  # empty group: defaults
    assert link.max_tx == 128 and link.win_tx == 1


def test_malformed_snrm_parameters_get_dm():
    for info in (b"\x81\x80", b"\x82\x80\x00", b"\x81\x80\x05\x05\x01\x80", b"\x81\x80\x03\x05\x05\x01"):
        link = new_link()
        _, _, _, c, _ = _one(feed(link, frame(SRV, C16, SNRM, info)))
        assert c == 0x1F and link.state == NDM, info


# **** information transfer ****


def test_sequence_numbers_wrap_modulo_8():
    app = EchoApp()
    link = new_link(app)
    connect(link)
    for k in range(20):
        ns = k & 7
        out = feed(link, frame(SRV, C16, i_ctrl(ns, ns), LLC_REQ + bytes([k])), MODES[k % 3])
        seg, _, _, c, info = _one(out)
        assert not seg and c == i_ctrl(ns, (ns + 1) & 7) and info == LLC_RSP + bytes([k])
    assert app.pdus == 20


def test_no_answer_from_upper_layer_gives_rr():
    link = new_link(EchoApp(answer=False))
    connect(link)
    _, _, _, c, info = _one(feed(link, frame(SRV, C16, i_ctrl(0, 0), LLC_REQ + b"\x01")))
    assert c == rr(1) and info == b""


def test_wrong_llc_header_is_acknowledged_but_not_delivered():
    app = EchoApp()
    link = new_link(app)
    connect(link)
    _, _, _, c, _ = _one(feed(link, frame(SRV, C16, i_ctrl(0, 0), b"\xE6\xE7\x00\x01")))
    assert c == rr(1) and app.pdus == 0


def _segments(payload, size):
    parts = []
    data = LLC_REQ + payload
    for i in range(0, len(data), size):
        parts.append(data[i : i + size])
    return parts


def test_segmented_request_is_reassembled():
    for mode in MODES:
        app = EchoApp(answer=False)
        link = new_link(app)
        connect(link)
        payload = bytes(range(256)) + bytes(44)
        parts = _segments(payload, 128)
        for k, part in enumerate(parts):
            more = k < len(parts) - 1
            out = feed(link, frame(SRV, C16, i_ctrl(k, 0), part, seg=more), mode)
            _, _, _, c, _ = _one(out)
            assert c == rr(k + 1), (k, hex(c))
        assert app.pdus == 1 and app.last_len == len(payload)
        assert link.pdu_in[: len(payload)] == payload


def _read_long_answer(link, first_out, ns_client):
    # Collect a segmented answer, polling with RR; returns (payload, frames).
    payload = bytearray()
    frames = 0
    out = first_out
    while True:
        seg, _, _, c, info = _one(out)
        frames += 1
        assert c & 1 == 0 and c & 0x10
        payload += info
        if not seg:
            break
        out = feed(link, frame(SRV, C16, rr(((c >> 1) + 1) & 7)))
    assert payload[:3] == LLC_RSP
    return bytes(payload[3:]), frames


def test_long_answer_is_segmented_and_polled_with_rr():
    for max_tx in (128, 64):
        link = new_link(max_info_tx=max_tx)
        connect(link, info=_params(max_tx, max_tx, 1, 1))
        payload = bytes((i * 7) & 0xFF for i in range(700))
        # Send the request in segments too (it is echoed back).
        parts = _segments(payload, link.max_rx)
        for k, part in enumerate(parts):
            out = feed(link, frame(SRV, C16, i_ctrl(k & 7, 0), part, seg=k < len(parts) - 1))
        got, frames = _read_long_answer(link, out, len(parts))
        assert got == payload
        assert frames == (len(payload) + 3 + max_tx - 1) // max_tx


def test_window_seven_sends_bursts_with_final_bit_on_last():
    link = new_link(max_info_tx=64, max_info_rx=64, window_tx=7, window_rx=7, pdu_size=2048)
    connect(link, info=_params(64, 64, 7, 7))
    assert link.win_tx == 7
    payload = bytes(i & 0xFF for i in range(1000))
    parts = _segments(payload, 64)
    # The client may send its segments in a window too: only the last needs the poll bit.
    stream = b""
    for k, part in enumerate(parts):
        last = k == len(parts) - 1
        stream += frame(SRV, C16, i_ctrl(k & 7, 0, pf=last or k % 7 == 6), part, seg=not last)
    out = feed(link, stream)
    # RRs answered the polls inside the request; the final frame produced the first burst.
    bursts = []
    got = bytearray()
    while True:
        frames = [f for f in out if parse(f)[3] & 1 == 0]
        bursts.append(len(frames))
        for k, f in enumerate(frames):
            seg, _, _, c, info = parse(f)
            assert bool(c & 0x10) == (k == len(frames) - 1), (k, hex(c))
            got += info
        seg, _, _, c, _ = parse(frames[-1])
        if not seg:
            break
        out = feed(link, frame(SRV, C16, rr(((c >> 1) + 1) & 7)))
    assert bytes(got[3:]) == payload
    assert bursts[0] == 7 and sum(bursts) == (1003 + 63) // 64


def test_rr_not_acknowledging_last_frame_gets_it_again():
    link = new_link()
    connect(link)
    payload = bytes(300)
    parts = _segments(payload, 128)
    for k, part in enumerate(parts):
        out = feed(link, frame(SRV, C16, i_ctrl(k, 0), part, seg=k < len(parts) - 1))
    first = out[0]
    seg, _, _, c, _ = parse(first)
    assert seg and (c >> 1) & 7 == 0
    # The client lost it: its RR still expects N(S)=0.
    again = feed(link, frame(SRV, C16, rr(0)))
    assert again == [first]
    second = feed(link, frame(SRV, C16, rr(1)))
    assert (parse(second[0])[3] >> 1) & 7 == 1


def test_repeated_request_gets_the_answer_again():
    app = EchoApp()
    link = new_link(app)
    connect(link)
    req = frame(SRV, C16, i_ctrl(0, 0), LLC_REQ + b"\x42")
    first = feed(link, req)
    assert feed(link, req) == first
    assert app.pdus == 1  # not processed twice


def test_out_of_sequence_i_frame_gets_rr_with_expected_number():
    app = EchoApp()
    link = new_link(app)
    connect(link)
    _, _, _, c, _ = _one(feed(link, frame(SRV, C16, i_ctrl(3, 0), LLC_REQ + b"\x01")))
    assert c == rr(0) and app.pdus == 0


def test_new_request_abandons_unfinished_answer():
    link = new_link()
    connect(link)
    parts = _segments(bytes(400), 128)
    for k, part in enumerate(parts):
        out = feed(link, frame(SRV, C16, i_ctrl(k, 0), part, seg=k < len(parts) - 1))
    seg, _, _, c, _ = parse(out[0])
    assert seg
    # Instead of polling for the rest, the client acknowledges and sends a new request.
    out = feed(link, frame(SRV, C16, i_ctrl(len(parts), 1), LLC_REQ + b"\x07"))
    seg, _, _, c, info = _one(out)
    assert not seg and info == LLC_RSP + b"\x07"


# **** errors: FRMR ****


def test_unknown_control_gets_frmr_until_reset():
    link = new_link()
    connect(link)
    for bad in (0x19, 0x1D, 0xE3):  # REJ, SREJ, an undefined U-frame
        link2 = new_link()
        connect(link2)
        _, _, _, c, info = _one(feed(link2, frame(SRV, C16, bad)))
        assert c == 0x97 and info == bytes([bad, 0x00, 0x01]), (hex(bad), info)
    _, _, _, c, _ = _one(feed(link, frame(SRV, C16, 0x19)))
    assert c == 0x97
    # The FRMR condition holds for further frames...
    _, _, _, c, info = _one(feed(link, frame(SRV, C16, i_ctrl(0, 0), LLC_REQ + b"\x01")))
    assert c == 0x97 and info[2] == 0x01
    # ...until SNRM resets the link.
    connect(link)
    _, _, _, c, _ = _one(feed(link, frame(SRV, C16, i_ctrl(0, 0), LLC_REQ + b"\x01")))
    assert c == i_ctrl(0, 1)


def test_rr_with_information_field_gets_frmr_x():
    link = new_link()
    connect(link)
    _, _, _, c, info = _one(feed(link, frame(SRV, C16, rr(0), b"\x00")))
    assert c == 0x97 and info[2] == 0x02


def test_invalid_nr_gets_frmr_z():
    link = new_link()
    connect(link)
    _, _, _, c, info = _one(feed(link, frame(SRV, C16, rr(5))))
    assert c == 0x97 and info == bytes([rr(5), 0x00, 0x08])


def test_info_longer_than_negotiated_gets_frmr_y():
    link = new_link(max_info_rx=256)
    connect(link)  # no proposal: 128 negotiated although 256 would fit the buffer
    _, _, _, c, info = _one(feed(link, frame(SRV, C16, i_ctrl(0, 0), LLC_REQ + bytes(140))))
    assert c == 0x97 and info[2] == 0x04


def test_frame_longer_than_buffer_gets_frmr_and_next_frame_works():
    for mode in MODES:
        link = new_link()
        connect(link)
        big = frame(SRV, C16, i_ctrl(0, 0), LLC_REQ + bytes(600))
        _, _, _, c, info = _one(feed(link, big, mode))
        assert c == 0x97 and info[2] == 0x04, mode
        connect(link)
        out = feed(link, frame(SRV, C16, i_ctrl(0, 0), LLC_REQ + b"\x05"), mode)
        assert _one(out)[4] == LLC_RSP + b"\x05"


def test_oversize_frame_for_another_meter_is_skipped_silently():
    link = new_link()
    connect(link)
    big = frame(server_addr(1, 99), C16, i_ctrl(0, 0), LLC_REQ + bytes(1500))
    ok = frame(SRV, C16, i_ctrl(0, 0), LLC_REQ + b"\x06")
    out = feed(link, big + ok)
    assert _one(out)[4] == LLC_RSP + b"\x06"


def test_segmented_request_too_big_for_pdu_buffer_gets_frmr():
    link = new_link(pdu_size=200)
    connect(link)
    parts = _segments(bytes(300), 128)
    for k, part in enumerate(parts):
        out = feed(link, frame(SRV, C16, i_ctrl(k, 0), part, seg=k < len(parts) - 1))
    _, _, _, c, info = _one(out)
    assert c == 0x97 and info[2] == 0x04


# **** timers ****


def test_inter_frame_timeout_drops_partial_frame():
    # A partial frame whose header (HCS) is valid claims 100 more bytes: without the timeout
    # the next frame is taken as its body and answered only once that length is reached
    # and the resync finds it; with the timeout it is answered at once.
    for gap, answered in ((999, False), (1001, True)):
        link = new_link(rx_timeout_ms=1000)
        partial = frame(SRV, C16, i_ctrl(0, 0), LLC_REQ + bytes(100))[:20]
        assert feed(link, partial, now=0) == []
        out = feed(link, frame(SRV, C16, SNRM), now=gap)
        assert (len(out) == 1) == answered, (gap, out)


def test_poll_applies_inter_frame_timeout_without_input():
    link = new_link(rx_timeout_ms=200)
    feed(link, frame(SRV, C16, SNRM)[:6], now=100)
    assert not link.de.idle()
    link.poll(250)
    assert not link.de.idle()
    link.poll(301)
    assert link.de.idle()


def test_inactivity_timeout_returns_to_ndm_and_tells_upper_layer():
    app = EchoApp()
    link = new_link(app, inactivity_ms=120000)
    connect(link, now=1000)
    link.poll(121000)
    assert link.state == NRM
    link.poll(121001)
    assert link.state == NDM and app.lost == 1
    _, _, _, c, _ = _one(feed(link, frame(SRV, C16, rr(0)), now=121002))
    assert c == 0x1F


def test_traffic_keeps_the_link_alive():
    link = new_link(inactivity_ms=1000)
    connect(link, now=0)
    for t in range(900, 10000, 900):
        out = feed(link, frame(SRV, C16, rr(0)), now=t)
        assert parse(out[0])[3] == rr(0), t
    assert link.state == NRM


def test_timers_survive_tick_wraparound():
    period = 1 << 30
    assert ticks_diff(5, period - 5) == 10
    assert ticks_diff(period - 5, 5) == -10
    app = EchoApp()
    link = new_link(app, inactivity_ms=1000)
    connect(link, now=period - 500)
    link.poll(400)  # 900 ms later, across the wrap
    assert link.state == NRM
    link.poll(600)
    assert link.state == NDM
