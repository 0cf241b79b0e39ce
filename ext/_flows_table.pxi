# Included by _flows.pyx: the bounded flow table in C memory and the
# TPACKET_V3 block walk.  Layout: ``_entries`` holds the flows densely
# (0 .. size-1; an eviction reuses the victim's entry, so it never has holes);
# ``_index`` is a linear-probing hash index over them, twice as many slots as
# entries (load <= 1/2), each slot the key hash's high 32 bits (compared
# before the key) and the entry number + 1 (0: empty); ``_heap`` is a min-heap
# of (bytes when pushed, creation order) with one node per flow.  Bytes only
# grow, so a node's bytes are never above its flow's: when evicting, a root
# that grew since is refreshed and sifted down, and the first root that did
# not is the exact smallest flow (flows_py does the same with heapq).  The heap
# is touched only on a new flow, never per packet.
cdef uint64_t _HI = 0xFFFFFFFF00000000
cdef uint64_t _LO = 0x00000000FFFFFFFF
cdef uint64_t _M1 = 0x9E3779B97F4A7C15
cdef uint64_t _M2 = 0xBF58476D1CE4E5B9

assert sizeof(Key) == 8 * _KEY_WORDS


cdef inline uint64_t _hash(const Key *k, uint64_t seed) noexcept nogil:
    # Seeded per table (os.urandom) so that crafted keys cannot be aimed at one
    # probe chain without knowing the seed; a multiply-xor mix, not SipHash.
    cdef uint64_t w, h = seed
    cdef int i
    for i in range(_KEY_WORDS):
        memcpy(&w, (<const uint8_t *>k) + 8 * i, 8)
        h = (h ^ w) * _M1
        h ^= h >> 29
    h ^= h >> 32
    h *= _M2
    return h ^ (h >> 31)


cdef tuple _retagged(const uint8_t *b, const Pkt *p):
    # The tag the kernel stripped, back after the MACs and counted in the
    # length, as flows_py._retagged does: built in place, one copy.
    cdef bytes h
    cdef uint8_t *o
    cdef int64_t wire = <int64_t>p.wire + 4  # can pass 2**32 - 1, as the twin's int does
    if p.snaplen < _ETH_MACS:
        return (p.direction, wire, PyBytes_FromStringAndSize(<const char *>b + p.data, p.snaplen))
    h = PyBytes_FromStringAndSize(NULL, p.snaplen + 4)
    o = <uint8_t *>PyBytes_AS_STRING(h)
    memcpy(o, b + p.data, _ETH_MACS)
    o[12] = p.tpid >> 8
    o[13] = p.tpid & 0xFF
    o[14] = p.tci >> 8
    o[15] = p.tci & 0xFF
    memcpy(o + 16, b + p.data + _ETH_MACS, p.snaplen - _ETH_MACS)
    return (p.direction, wire, h)


cdef class FlowTable:
    """A bounded flow table; see agent/core/flows_py.py for every rule.
    One thread at a time: a call while another thread is inside one (the
    block walk runs without the GIL) raises RuntimeError."""
    cdef Entry *_entries
    cdef Node *_heap
    cdef uint64_t *_index
    cdef uint64_t _mask
    cdef uint32_t _cap
    cdef uint32_t _n
    cdef uint64_t _seed
    cdef uint64_t _seq
    cdef uint64_t _frames, _truncated, _malformed, _evicted
    cdef bint _busy

    def __cinit__(self, max_flows):
        cdef uint64_t slots = 1
        cap = checked(max_flows, "max_flows", 1, MAX_FLOWS_LIMIT)
        while slots < 2 * <uint64_t>cap:
            slots <<= 1
        # calloc: the pages of a large table become resident only as flows use them.
        self._entries = <Entry *>calloc(cap, sizeof(Entry))
        self._heap = <Node *>calloc(cap, sizeof(Node))
        self._index = <uint64_t *>calloc(slots, sizeof(uint64_t))
        if self._entries == NULL or self._heap == NULL or self._index == NULL:
            raise MemoryError(f"no memory for a flow table of {cap} flows")
        self._cap = cap
        self._mask = slots - 1
        self._seed = int.from_bytes(os.urandom(8), "little")

    def __dealloc__(self):
        free(self._entries)
        free(self._heap)
        free(self._index)

    @property
    def frames(self):
        return self._frames

    @property
    def truncated(self):
        return self._truncated

    @property
    def malformed(self):
        return self._malformed

    @property
    def evicted(self):
        return self._evicted

    @property
    def size(self):
        return self._n

    @property
    def max_flows(self):
        return self._cap

    cdef int _enter(self) except -1:
        if self._busy:
            raise RuntimeError("FlowTable is in use by another thread")
        self._busy = True
        return 0

    cdef void _sift_down(self, uint32_t pos) noexcept nogil:
        cdef Node node = self._heap[pos]
        cdef uint32_t child
        while 2 * <uint64_t>pos + 1 < self._n:
            child = 2 * pos + 1
            if child + 1 < self._n and _before(&self._heap[child + 1], &self._heap[child]):
                child += 1
            if not _before(&self._heap[child], &node):
                break
            self._heap[pos] = self._heap[child]
            pos = child
        self._heap[pos] = node

    cdef void _sift_up(self, uint32_t pos) noexcept nogil:
        cdef Node node = self._heap[pos]
        cdef uint32_t parent
        while pos > 0:
            parent = (pos - 1) // 2
            if not _before(&node, &self._heap[parent]):
                break
            self._heap[pos] = self._heap[parent]
            pos = parent
        self._heap[pos] = node

    cdef void _unindex(self, uint32_t entry) noexcept nogil:
        """Take ``entry`` out of the index, shifting its probe chain back."""
        cdef uint64_t mask = self._mask, i, j, s, home
        i = self._entries[entry].hash & mask
        while (self._index[i] & _LO) != entry + 1:
            i = (i + 1) & mask
        j = i
        while True:
            j = (j + 1) & mask
            s = self._index[j]
            if s == 0:
                break
            home = self._entries[(s & _LO) - 1].hash & mask
            if ((j - home) & mask) >= ((j - i) & mask):  # i lies on s's probe path
                self._index[i] = s
                i = j
        self._index[i] = 0

    cdef uint32_t _evict(self) noexcept nogil:
        cdef Node *top = &self._heap[0]
        cdef uint64_t now
        cdef uint32_t victim
        while True:
            now = self._entries[top.entry].nbytes
            if now == top.nbytes:
                break
            top.nbytes = now  # it grew since it was pushed: look again
            self._sift_down(0)
        victim = top.entry
        self._unindex(victim)
        self._evicted += 1
        return victim

    cdef void _account(self, const Key *k, uint64_t frame_len, uint64_t rate) noexcept nogil:
        cdef uint64_t h = _hash(k, self._seed), mask = self._mask, i, s
        cdef uint64_t add = frame_len * rate  # both < 2**32: no overflow
        cdef Entry *e
        cdef uint32_t idx
        i = h & mask
        while True:
            s = self._index[i]
            if s == 0:
                break
            if (s & _HI) == (h & _HI):
                e = &self._entries[(s & _LO) - 1]
                if memcmp(&e.key, k, sizeof(Key)) == 0:
                    e.packets = _sat_add(e.packets, rate)
                    e.nbytes = _sat_add(e.nbytes, add)
                    return
            i = (i + 1) & mask
        if self._n >= self._cap:
            idx = self._evict()
            i = h & mask  # the eviction may have shifted this chain
            while self._index[i] != 0:
                i = (i + 1) & mask
            self._heap[0] = Node(add, self._seq, idx)
            self._sift_down(0)
        else:
            idx = self._n
            self._n += 1
            self._heap[idx] = Node(add, self._seq, idx)
            self._sift_up(idx)
        e = &self._entries[idx]
        e.key = k[0]
        e.hash = h
        e.packets = rate
        e.nbytes = add
        e.seq = self._seq
        self._seq += 1
        self._index[i] = (h & _HI) | (idx + 1)

    cdef int _frame(self, const uint8_t *b, int64_t n, uint32_t ifindex, uint8_t direction,
                    uint64_t frame_len, uint64_t rate, int vlan) noexcept nogil:
        cdef Key k
        cdef int status
        k.ifindex = ifindex
        k.direction = direction
        status = _parse(b, n, &k)
        self._frames += 1
        if status == _TRUNC:
            self._truncated += 1
        elif status == _BAD:
            self._malformed += 1
        if vlan >= 0:
            k.vlan = vlan
        self._account(&k, frame_len, rate)
        return status

    cdef int64_t _walk(self, const uint8_t *b, int64_t end, uint32_t ifindex, uint64_t rate,
                       Pkt *pkts, int64_t room) noexcept nogil:
        cdef int64_t off, data, done = 0
        cdef uint32_t num, nxt, snaplen, wire, status, tci
        cdef uint16_t mac, tpid
        cdef uint8_t direction
        if end < _BLOCK_DESC:
            self._malformed += 1
            return 0
        num = _u32(b + _NUM_PKTS)
        off = _u32(b + _FIRST_PKT)
        while done < num:
            if off + _HDRLEN > end:
                self._malformed += 1
                break
            nxt = _u32(b + off)
            snaplen = _u32(b + off + _SNAPLEN)
            wire = _u32(b + off + _WIRELEN)
            status = _u32(b + off + _STATUS)
            memcpy(&mac, b + off + _MAC, 2)
            tci = _u32(b + off + _VLAN_TCI)
            memcpy(&tpid, b + off + _VLAN_TPID, 2)
            data = off + mac
            if data + snaplen > end:
                self._malformed += 1
                break
            direction = 1 if b[off + _PKTTYPE] == _OUTGOING else 0
            self._frame(b + data, snaplen, ifindex, direction, wire, rate,
                        <int>(tci & 0x0FFF) if status & _VLAN_VALID else -1)
            if pkts != NULL and done < room:
                pkts[done] = Pkt(data, snaplen, wire,
                                 tpid if status & _TPID_VALID else 0x8100, <uint16_t>tci,
                                 direction, 1 if status & _VLAN_VALID else 0)
            done += 1
            if done < num:
                if nxt < _HDRLEN:
                    self._malformed += 1
                    break
                off += nxt
        return done

    def add_frame(self, frame, ifindex, direction, frame_len, rate):
        """Account one captured frame; returns its decode status."""
        cdef Py_buffer view
        cdef uint32_t c_ifindex = checked(ifindex, "ifindex", 0, flows_py.U32)
        cdef uint8_t c_direction = checked(direction, "direction", DIR_IN, DIR_OUT)
        cdef uint64_t c_len = checked(frame_len, "frame_len", 0, flows_py.U32)
        cdef uint64_t c_rate = checked(rate, "rate", 1, flows_py.U32)
        cdef int status
        _get_buffer(frame, &view)
        try:
            self._enter()
            try:
                status = self._frame(<const uint8_t *>view.buf, view.len, c_ifindex, c_direction,
                                     c_len, c_rate, -1)
            finally:
                self._busy = False
        finally:
            PyBuffer_Release(&view)
        return status

    def add_block(self, block, ifindex, rate, headers=None):
        """Account every packet of one TPACKET_V3 block; returns how many."""
        cdef Py_buffer view
        cdef uint32_t c_ifindex = checked(ifindex, "ifindex", 0, flows_py.U32)
        cdef uint64_t c_rate = checked(rate, "rate", 1, flows_py.U32)
        cdef const uint8_t *b
        cdef int64_t n, done, room = 0, i
        cdef Pkt *pkts = NULL
        if headers is not None and not isinstance(headers, list):
            raise TypeError("headers must be a list or None")
        _get_buffer(block, &view)
        try:
            b = <const uint8_t *>view.buf
            n = view.len
            if headers is not None and n >= _BLOCK_DESC:
                room = min(<int64_t>_u32(b + _NUM_PKTS), n // _HDRLEN + 1)
                pkts = <Pkt *>malloc(max(room, 1) * sizeof(Pkt))
                if pkts == NULL:
                    raise MemoryError()
            self._enter()
            try:
                with nogil:
                    done = self._walk(b, n, c_ifindex, c_rate, pkts, room)
            finally:
                self._busy = False
            for i in range(min(done, room)):
                if pkts[i].tagged:
                    headers.append(_retagged(b, &pkts[i]))
                else:
                    headers.append((pkts[i].direction, pkts[i].wire,
                                    PyBytes_FromStringAndSize(<const char *>b + pkts[i].data,
                                                              pkts[i].snaplen)))
        finally:
            free(pkts)
            PyBuffer_Release(&view)
        return done

    def flows(self):
        """(ifindex, direction, vlan, vni, ethertype, src, dst, proto, sport,
        dport, packets, bytes) for every flow, in no particular order."""
        cdef uint32_t i
        cdef Entry *e
        self._enter()
        try:
            out = []
            for i in range(self._n):
                e = &self._entries[i]
                out.append((e.key.ifindex, e.key.direction) + _key_fields(&e.key)
                           + (e.packets, e.nbytes))
            return out
        finally:
            self._busy = False

    def clear(self):
        """Forget every flow; the counters go on."""
        self._enter()
        self._n = 0
        memset(self._index, 0, (self._mask + 1) * sizeof(uint64_t))
        self._busy = False
