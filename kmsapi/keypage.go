package kmsapi

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"net/http"
	"sync"
	"unicode/utf8"
)

// decodeKeyPage decodes a resource_instances answer. With action count the
// resources may be null; with filter they must be present.
//
// Key pages are the bulk of what the exporter reads (a 1000-key page is
// about 300-650 KB), and encoding/json spends most of its time calling the
// string-or-number unmarshalers field by field. So this one shape has a
// scanner of its own: one pass, no reflection, slices sized up front, and
// values that repeat from key to key (tags, domain) allocated once a page.
// It accepts what decodeKeyPageReference (the encoding/json decoder, kept in
// the tests) accepts and yields the same keys; FuzzKeyPageMatchesReference
// holds the two together, over whole bodies and over streams.
func decodeKeyPage(body []byte, wantResources bool) (KeyPage, error) {
	p := pageScanner{scanner: scanner{b: body}, size: int64(len(body))}
	return p.decode(wantResources)
}

// decodeKeyPageFrom is decodeKeyPage reading the answer from r, of size
// bytes (-1 if unknown), through a small window instead of a buffer holding
// the whole body: the exporter never has a page's JSON in memory at once.
// The keys are stored in dst's storage as long as they fit in cap(dst); past
// that they go elsewhere. A read error of r makes it fail with that error
// wrapped.
func decodeKeyPageFrom(r io.Reader, size int64, wantResources bool, dst []Key) (KeyPage, error) {
	w := windowPool.Get().(*[]byte)
	p := pageScanner{scanner: scanner{b: (*w)[:0], r: r}, size: size, keys: dst[:0:cap(dst)]}
	page, err := p.decode(wantResources)
	// Nothing decoded points into the window (strings are copied out), so
	// it can serve the next page; a window grown for a huge token goes.
	if cap(p.b) == windowSize {
		windowPool.Put(w)
	}
	return page, err
}

// windowSize is the window a streamed page is read through: big enough that
// refills are few, small enough that pages read at once cost little.
const windowSize = 32 << 10

var windowPool = sync.Pool{New: func() any { b := make([]byte, windowSize); return &b }}

func (p *pageScanner) decode(wantResources bool) (KeyPage, error) {
	p.interned = getInternMap()
	defer putInternMap(p.interned)
	err := p.page()
	if p.rerr != nil {
		// The transfer broke (or ran past the cap): that, not the
		// unfinished JSON it left, is the error.
		return KeyPage{}, fmt.Errorf("reading response body: %w", p.rerr)
	}
	if err != nil {
		return KeyPage{}, decodeError(EndpointResourceInstances, http.StatusOK, "decoding response: %w", err)
	}
	if !p.haveTotal {
		return KeyPage{}, decodeError(EndpointResourceInstances, http.StatusOK, "response lacks total_count")
	}
	if p.total < 0 || p.total > math.MaxInt32 {
		return KeyPage{}, decodeError(EndpointResourceInstances, http.StatusOK, "implausible total_count %d", p.total)
	}
	if wantResources && !p.haveResources && p.total > 0 {
		return KeyPage{}, decodeError(EndpointResourceInstances, http.StatusOK, "response lacks resources")
	}
	keys := p.keys
	if keys == nil {
		keys = []Key{}
	}
	for i := range keys {
		k := &keys[i]
		if k.ID == "" {
			return KeyPage{}, decodeError(EndpointResourceInstances, http.StatusOK, "resource %d has no key_id or resource_id", i)
		}
		if s := p.tagSpans[i]; s.end > s.start {
			k.Tags = p.tags[s.start:s.end:s.end]
		}
	}
	return KeyPage{Total: int(p.total), Keys: keys}, nil
}

type pageScanner struct {
	scanner
	size          int64 // bytes of the whole answer; -1 if unknown
	keys          []Key
	tags          []Tag     // every key's tags, back to back
	tagSpans      []tagSpan // tags[start:end] belong to keys[i]
	total         int64
	haveTotal     bool   // total_count present and not null
	haveResources bool   // resources present and not null
	rid, rname    []byte // the current resource's resource_id and resource_name
}

type tagSpan struct{ start, end int }

func (p *pageScanner) page() error {
	if _, err := p.openObject(); err != nil {
		return err
	}
	for first := true; ; first = false {
		name, ok, err := p.nextMember(first)
		if err != nil || !ok {
			if err != nil {
				return err
			}
			break
		}
		switch canonical(name, pageFields) {
		case fResources:
			if err := p.resources(); err != nil {
				return err
			}
		case fTotalCount:
			if p.null() {
				p.haveTotal = false
				continue
			}
			n, err := p.flexInt()
			if err != nil {
				return err
			}
			p.total, p.haveTotal = n, true
		default:
			if err := p.skip(); err != nil {
				return err
			}
		}
	}
	return p.end()
}

func (p *pageScanner) resources() error {
	p.keys, p.tagSpans, p.tags = p.keys[:0], p.tagSpans[:0], p.tags[:0]
	isNull, err := p.openArray()
	p.haveResources = !isNull
	if err != nil || isNull {
		return err
	}
	if p.tagSpans == nil {
		// Size the slices from the body's length (its Content-Length when
		// streamed) rather than growing them by doubling: a resource takes
		// well over 128 bytes of JSON, and a page holds at most MaxPageSize
		// of them. Without a length they grow.
		n := 16
		if p.size >= 0 {
			n = int(min(MaxPageSize, max(0, p.size-p.pos())/128+1))
		}
		if cap(p.keys) == 0 {
			p.keys = make([]Key, 0, n)
		}
		p.tagSpans, p.tags = make([]tagSpan, 0, cap(p.keys)), make([]Tag, 0, n)
	}
	for first := true; ; first = false {
		ok, err := p.nextElem(first)
		if err != nil || !ok {
			return err
		}
		if err := p.resource(); err != nil {
			return err
		}
	}
}

// resource reads one element of resources. resource_id and resource_name
// usually repeat key_id and key_alias, so they are kept as bytes (copied
// out of the window, which moves on) and become strings of their own only
// when they differ.
func (p *pageScanner) resource() error {
	p.keys = append(p.keys, Key{})
	p.tagSpans = append(p.tagSpans, tagSpan{})
	i := len(p.keys) - 1
	k := &p.keys[i]
	var haveID, haveName bool
	var created, deletion, expires int64
	isNull, err := p.openObject()
	for first := true; err == nil && !isNull; first = false {
		var name []byte
		var ok bool
		if name, ok, err = p.nextMember(first); err != nil || !ok {
			break
		}
		switch resourceField(name) {
		case fResourceID:
			var v []byte
			var isNull bool
			if v, isNull, err = p.strValue(); err == nil && !isNull {
				p.rid, haveID = append(p.rid[:0], v...), true
			}
		case fResourceName:
			var v []byte
			var isNull bool
			if v, isNull, err = p.strValue(); err == nil && !isNull {
				p.rname, haveName = append(p.rname[:0], v...), true
			}
		case fTags:
			err = p.tagList(i)
		case fResourceDetail:
			err = p.detail(k, &created, &deletion, &expires)
		default:
			err = p.skip()
		}
	}
	if k.ID == "" && haveID {
		k.ID = string(p.rid)
	}
	if haveName {
		if string(p.rname) == k.Alias {
			k.ResourceName = k.Alias
		} else {
			k.ResourceName = string(p.rname)
		}
	}
	k.Created, k.ScheduledDeletion, k.Expires = apiTime(flexInt(created)), apiTime(flexInt(deletion)), apiTime(flexInt(expires))
	return err
}

func (p *pageScanner) detail(k *Key, created, deletion, expires *int64) error {
	isNull, err := p.openObject()
	if err != nil || isNull {
		return err
	}
	for first := true; ; first = false {
		name, ok, err := p.nextMember(first)
		if err != nil || !ok {
			return err
		}
		var n int64
		switch detailField(name) {
		case fKeyID:
			k.ID, err = p.str(k.ID)
		case fDomainID:
			k.DomainID, err = p.istr(k.DomainID)
		case fKeyAlias:
			k.Alias, err = p.str(k.Alias)
		case fKeyDescription:
			k.Description, err = p.str(k.Description)
		case fCreationDate:
			*created, err = p.flexInt()
		case fScheduledDeletionDate:
			*deletion, err = p.flexInt()
		case fExpirationTime:
			*expires, err = p.flexInt()
		case fKeyState:
			n, err = p.flexInt()
			k.State = KeyState(n)
		case fDefaultKeyFlag:
			n, err = p.flexInt()
			k.Default = n == 1
		case fKeyType:
			n, err = p.flexInt()
			k.KeyType = int(n)
		default:
			err = p.skip()
		}
		if err != nil {
			return err
		}
	}
}

// tagList reads the tags of key i; a later tags member replaces an earlier one.
func (p *pageScanner) tagList(i int) error {
	start := len(p.tags)
	p.tagSpans[i] = tagSpan{start, start}
	isNull, err := p.openArray()
	if err != nil || isNull {
		return err
	}
	for first := true; ; first = false {
		ok, err := p.nextElem(first)
		if err != nil || !ok {
			p.tagSpans[i] = tagSpan{start, len(p.tags)}
			return err
		}
		p.tags = append(p.tags, Tag{})
		t := &p.tags[len(p.tags)-1]
		isNull, err := p.openObject()
		for first := true; err == nil && !isNull; first = false {
			var name []byte
			var ok bool
			if name, ok, err = p.nextMember(first); err != nil || !ok {
				break
			}
			switch canonical(name, tagFields) {
			case fKey:
				t.Key, err = p.istr(t.Key)
			case fValue:
				t.Value, err = p.istr(t.Value)
			default:
				err = p.skip()
			}
		}
		if err != nil {
			return err
		}
	}
}

// The member names each object of a page has; others are skipped. The
// matching functions return the index of a name, so the constants follow
// the lists.
var (
	pageFields     = []string{"resources", "total_count"}
	resourceFields = []string{"resource_id", "resource_detail", "resource_name", "tags"}
	detailFields   = []string{"key_id", "domain_id", "key_alias", "key_description", "creation_date",
		"scheduled_deletion_date", "key_state", "default_key_flag", "key_type", "expiration_time"}
	tagFields = []string{"key", "value"}
)

const (
	fResources, fTotalCount = 0, 1

	fResourceID, fResourceDetail, fResourceName, fTags = 0, 1, 2, 3

	fKeyID, fDomainID, fKeyAlias, fKeyDescription, fCreationDate = 0, 1, 2, 3, 4
	fScheduledDeletionDate, fKeyState, fDefaultKeyFlag, fKeyType = 5, 6, 7, 8
	fExpirationTime                                              = 9

	fKey, fValue = 0, 1
)

// detailField is canonical for the members of resource_detail, most of a
// page's names: a switch finds an exact match by length and bytes rather
// than trying each field in turn.
func detailField(name []byte) int {
	switch string(name) {
	case "key_id":
		return fKeyID
	case "domain_id":
		return fDomainID
	case "key_alias":
		return fKeyAlias
	case "key_description":
		return fKeyDescription
	case "creation_date":
		return fCreationDate
	case "scheduled_deletion_date":
		return fScheduledDeletionDate
	case "key_state":
		return fKeyState
	case "default_key_flag":
		return fDefaultKeyFlag
	case "key_type":
		return fKeyType
	case "expiration_time":
		return fExpirationTime
	}
	return foldField(name, detailFields)
}

// resourceField is detailField for the members of a resource.
func resourceField(name []byte) int {
	switch string(name) {
	case "resource_id":
		return fResourceID
	case "resource_detail":
		return fResourceDetail
	case "resource_name":
		return fResourceName
	case "tags":
		return fTags
	}
	return foldField(name, resourceFields)
}

// canonical maps an object member name to the index of the field it sets
// the way encoding/json does: an exact match, or else one ignoring case;
// -1 for none. The fields are lower-case ASCII.
func canonical(name []byte, fields []string) int {
	for i, f := range fields {
		if string(name) == f {
			return i
		}
	}
	return foldField(name, fields)
}

// foldField is canonical's match ignoring case, for a name that matches
// no field exactly.
func foldField(name []byte, fields []string) int {
	// Most names that get here are members we skip, in lower case: such a
	// name cannot fold onto a field it does not equal.
	if !hasUpperOrNonASCII(name) {
		return -1
	}
	ascii := true
	for _, c := range name {
		if c >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	for i, f := range fields {
		// An ASCII name folds only onto a name of its length; others may
		// hold runes like the Kelvin sign that fold onto ASCII letters.
		if (!ascii || len(name) == len(f)) && bytes.EqualFold(name, []byte(f)) {
			return i
		}
	}
	return -1
}

// hasUpperOrNonASCII reports whether b holds an upper-case ASCII letter or
// a non-ASCII byte, eight bytes at a time: adding to the low seven bits of
// each byte sets its high bit from 'A' on, and again from '[' on, without
// carrying into the next byte.
func hasUpperOrNonASCII(b []byte) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	for len(b) >= 8 {
		x := binary.LittleEndian.Uint64(b)
		y := x &^ highs
		if ((y+ones*(0x80-'A'))&^(y+ones*(0x80-'['))|x)&highs != 0 {
			return true
		}
		b = b[8:]
	}
	for _, c := range b {
		if 'A' <= c && c <= 'Z' || c >= utf8.RuneSelf {
			return true
		}
	}
	return false
}

// maxDepth bounds nesting, as encoding/json does, so a hostile body cannot
// exhaust the stack.
const maxDepth = 10000

// scanner reads JSON from a window over its input. With a []byte input the
// window is all of it. With a reader (a response body) it is a buffer that
// fill refills as parsing advances, keeping only the token in progress.
//
// Slices of b are valid until the next scanner call that may read: a
// refill moves the kept bytes to the front of the window. So whatever must
// outlive that is copied (member names before white space, resource_id).
type scanner struct {
	b        []byte    // the window; b[i:] is unread
	i        int       // next byte
	mark     int       // start of the token in progress: fill keeps b[mark:]
	off      int64     // input offset of b[0], for error messages
	r        io.Reader // nil once all the input is in b
	rerr     error     // r's error other than io.EOF
	depth    int
	name     []byte // a member name copied out of the window
	interned map[string]string
	recent   [256]string // values istr returned lately, by recentSlot
}

var errUnexpectedEnd = errors.New("unexpected end of JSON input")

// fill reads more input into the window and reports whether it got any.
// It keeps b[mark:], moving it to the front when the window is full, and
// grows the window only when that token alone fills it: a window never
// holds more than one token and what follows it. The growth stops at the
// body cap, past which the reader (bodyReader) fails anyway.
func (s *scanner) fill() bool {
	if s.r == nil {
		return false
	}
	if len(s.b) == cap(s.b) {
		if keep := s.mark; keep > 0 {
			n := copy(s.b, s.b[keep:])
			s.b = s.b[:n]
			s.off += int64(keep)
			s.i -= keep
			s.mark = 0
		} else {
			limit := int(min(maxBodyBytes+1, math.MaxInt32))
			if cap(s.b) >= limit {
				s.r, s.rerr = nil, bodyTooLargeError{maxBodyBytes}
				return false
			}
			b := make([]byte, len(s.b), min(max(2*cap(s.b), 64), limit))
			copy(b, s.b)
			s.b = b
		}
	}
	// A reader may return nothing without an error a few times; not forever.
	for range 100 {
		n, err := s.r.Read(s.b[len(s.b):cap(s.b)])
		s.b = s.b[:len(s.b)+n]
		if err != nil {
			if err != io.EOF {
				s.rerr = err
			}
			s.r = nil
			return n > 0
		}
		if n > 0 {
			return true
		}
	}
	s.r, s.rerr = nil, io.ErrNoProgress
	return false
}

// more reports whether input remains at b[i], refilling inside a token.
func (s *scanner) more() bool {
	return s.i < len(s.b) || s.fill()
}

// avail reports whether n bytes are in the window from b[i], refilling.
func (s *scanner) avail(n int) bool {
	for len(s.b)-s.i < n {
		if !s.fill() {
			return false
		}
	}
	return true
}

// pos is the input offset of b[i].
func (s *scanner) pos() int64 { return s.off + int64(s.i) }

// ws skips white space. Between tokens nothing before b[i] is needed, so a
// refill here drops it: a long run of blanks costs no window.
func (s *scanner) ws() {
	// Inlined fast path: compact JSON has no blanks between tokens.
	if s.i < len(s.b) && s.b[s.i] > ' ' {
		return
	}
	s.wsSlow()
}

func (s *scanner) wsSlow() {
	for {
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case ' ', '\t', '\n', '\r':
				s.i++
			default:
				return
			}
		}
		s.mark = s.i
		if !s.fill() {
			return
		}
	}
}

func (s *scanner) syntaxErr(what string) error {
	if s.i >= len(s.b) {
		return errUnexpectedEnd
	}
	return fmt.Errorf("invalid character %q %s at offset %d", s.b[s.i], what, s.pos())
}

// end checks that only white space follows the top-level value, reading a
// streamed body to its end.
func (s *scanner) end() error {
	s.ws()
	if s.i != len(s.b) {
		return s.syntaxErr("after top-level value")
	}
	return nil
}

// null consumes a null literal if one comes next.
func (s *scanner) null() bool {
	if s.i < len(s.b) && s.b[s.i] > ' ' && s.b[s.i] != 'n' {
		return false // the usual case, decided inline
	}
	return s.nullSlow()
}

func (s *scanner) nullSlow() bool {
	s.ws()
	s.mark = s.i
	if s.avail(4) && string(s.b[s.i:s.i+4]) == "null" {
		s.i += 4
		return true
	}
	return false
}

func (s *scanner) literal(lit string) error {
	s.mark = s.i
	if !s.avail(len(lit)) || string(s.b[s.i:s.i+len(lit)]) != lit {
		if len(s.b)-s.i < len(lit) && lit[:len(s.b)-s.i] == string(s.b[s.i:]) {
			return errUnexpectedEnd
		}
		return s.syntaxErr("in literal")
	}
	s.i += len(lit)
	return nil
}

// openObject consumes the start of an object; null counts as an empty one.
func (s *scanner) openObject() (isNull bool, err error) {
	return s.open('{', "an object")
}

// openArray consumes the start of an array; null counts as an empty one.
func (s *scanner) openArray() (isNull bool, err error) {
	return s.open('[', "an array")
}

func (s *scanner) open(c byte, what string) (isNull bool, err error) {
	s.ws()
	if s.null() {
		return true, nil
	}
	if s.i >= len(s.b) || s.b[s.i] != c {
		return false, s.typeErr(what)
	}
	if s.depth++; s.depth > maxDepth {
		return false, errors.New("exceeded max depth")
	}
	s.i++
	return false, nil
}

// close consumes what follows a member or element: ',' (more to come) or
// the closing c. first is true before the first one, when c may come at once.
func (s *scanner) close(c byte, first bool, what string) (more bool, err error) {
	s.ws()
	if s.i >= len(s.b) {
		return false, errUnexpectedEnd
	}
	switch {
	case s.b[s.i] == c:
		s.i++
		s.depth--
		return false, nil
	case first:
		return true, nil
	case s.b[s.i] == ',':
		s.i++
		return true, nil
	}
	return false, s.syntaxErr(what)
}

// nextMember reads the name of the next member of an open object, leaving
// its value to the caller; ok is false once the object is closed. The name
// is valid until the next scanner call.
func (s *scanner) nextMember(first bool) (name []byte, ok bool, err error) {
	if more, err := s.close('}', first, "after object key:value pair"); !more || err != nil {
		return nil, false, err
	}
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return nil, false, s.syntaxErr("looking for beginning of object key string")
	}
	// Not strValue: the quote is already checked, and a name is not null.
	start, plain, err := s.strSpan()
	if err == nil {
		name, err = s.strBody(start, plain)
	}
	if err != nil {
		return nil, false, err
	}
	if s.i >= len(s.b) || s.b[s.i] != ':' {
		// White space or the window's end before the colon: skipping it
		// may refill the window, so keep the name apart.
		s.name = append(s.name[:0], name...)
		name = s.name
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return nil, false, s.syntaxErr("after object key")
		}
	}
	s.i++
	return name, true, nil
}

// nextElem reports whether another element of an open array follows,
// leaving it to the caller.
func (s *scanner) nextElem(first bool) (ok bool, err error) {
	return s.close(']', first, "after array element")
}

// typeErr reports a value of the wrong kind, after checking it is valid
// JSON at all (a syntax error takes precedence, as in encoding/json). The
// value may not stay in the window while it is skipped, so its head (what
// the message quotes: 20 runes) is copied first.
func (s *scanner) typeErr(want string) error {
	start := s.pos()
	s.mark = s.i
	s.avail(20 * utf8.UTFMax)
	head := bytes.Clone(s.b[s.i:min(s.i+20*utf8.UTFMax, len(s.b))])
	if err := s.skip(); err != nil {
		return err
	}
	head = head[:min(int64(len(head)), s.pos()-start)]
	return fmt.Errorf("expected %s at offset %d, got %.20q", want, start, head)
}

// skip consumes one value of any kind, checking its syntax.
func (s *scanner) skip() error {
	s.ws()
	if s.i >= len(s.b) {
		return errUnexpectedEnd
	}
	switch c := s.b[s.i]; {
	case c == '{':
		if _, err := s.open('{', ""); err != nil {
			return err
		}
		for first := true; ; first = false {
			_, ok, err := s.nextMember(first)
			if err != nil || !ok {
				return err
			}
			if err := s.skip(); err != nil {
				return err
			}
		}
	case c == '[':
		if _, err := s.open('[', ""); err != nil {
			return err
		}
		for first := true; ; first = false {
			ok, err := s.nextElem(first)
			if err != nil || !ok {
				return err
			}
			if err := s.skip(); err != nil {
				return err
			}
		}
	case c == '"':
		_, _, err := s.strSpan()
		return err
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || '0' <= c && c <= '9':
		_, err := s.number()
		return err
	}
	return s.syntaxErr("looking for beginning of value")
}

// str reads a string value; null leaves old in place, as encoding/json does.
func (s *scanner) str(old string) (string, error) {
	raw, isNull, err := s.strValue()
	if err != nil || isNull {
		return old, err
	}
	return string(raw), nil
}

// istr is str for values that repeat from key to key (tags, the domain, a
// shared description): each distinct value is allocated once per page.
func (s *scanner) istr(old string) (string, error) {
	raw, isNull, err := s.strValue()
	if err != nil || isNull {
		return old, err
	}
	// A small cache in front of the map: hashing a string for the map
	// costs more than a few loads and one comparison, and most values are
	// the same few strings key after key.
	slot := &s.recent[recentSlot(raw)]
	if *slot == string(raw) {
		return *slot, nil
	}
	v, ok := s.interned[string(raw)]
	if !ok {
		v = string(raw)
		if s.interned != nil {
			s.interned[v] = v
		}
	}
	*slot = v
	return v, nil
}

// recentSlot picks raw's slot in scanner.recent from its length and a few
// of its bytes: values that differ in a digit or two still spread out.
func recentSlot(raw []byte) int {
	n := len(raw)
	if n == 0 {
		return 0
	}
	return (n + int(raw[0]) + 7*int(raw[n/2]) + 31*int(raw[n-1])) % len(scanner{}.recent)
}

// Interning maps are reused from page to page: emptied, they keep their
// room, and a page's worth of distinct values is a few hundred at most.
var internPool = sync.Pool{New: func() any { return make(map[string]string, 256) }}

func getInternMap() map[string]string { return internPool.Get().(map[string]string) }

func putInternMap(m map[string]string) {
	if len(m) > 4096 { // an unusual page: let it go rather than keep it big
		return
	}
	clear(m)
	internPool.Put(m)
}

// strValue reads a string or null and returns the decoded bytes of the
// string; they alias the window unless the string has escapes.
func (s *scanner) strValue() (raw []byte, isNull bool, err error) {
	s.ws()
	if s.null() {
		return nil, true, nil
	}
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return nil, false, s.typeErr("a string")
	}
	start, plain, err := s.strSpan()
	if err != nil {
		return nil, false, err
	}
	raw, err = s.strBody(start, plain)
	return raw, false, err
}

// strBody returns the decoded bytes of the string token strSpan just
// consumed from start; they alias the window unless the string has escapes.
func (s *scanner) strBody(start int, plain bool) ([]byte, error) {
	raw := s.b[start:s.i]
	if plain || utf8.Valid(raw) && bytes.IndexByte(raw, '\\') < 0 {
		return raw[1 : len(raw)-1], nil
	}
	// Escapes or invalid UTF-8: rare; let encoding/json apply its rules.
	var v string
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, err
	}
	return []byte(v), nil
}

// strSpan consumes a string token, whole in the window when it returns;
// start is the index of its opening quote, and plain says it holds only
// printable ASCII without escapes.
func (s *scanner) strSpan() (start int, plain bool, err error) {
	s.mark = s.i
	s.i++
	// Fast path: plain bytes up to the closing quote.
	for {
		s.i = plainEnd(s.b, s.i)
		if s.i < len(s.b) {
			if s.b[s.i] == '"' {
				s.i++
				return s.mark, true, nil
			}
			break // not plain: the careful loop below takes over
		}
		if !s.fill() {
			return s.mark, false, errUnexpectedEnd
		}
	}
	for s.more() {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return s.mark, false, nil
		case c == '\\':
			if !s.avail(2) {
				s.i = len(s.b)
				return s.mark, false, errUnexpectedEnd
			}
			switch s.b[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				s.avail(6)
				for j := 2; j < 6; j++ {
					if s.i+j >= len(s.b) {
						s.i = len(s.b)
						return s.mark, false, errUnexpectedEnd
					}
					if !isHex(s.b[s.i+j]) {
						s.i += j
						return s.mark, false, s.syntaxErr("in \\u hexadecimal character escape")
					}
				}
				s.i += 6
			default:
				s.i++
				return s.mark, false, s.syntaxErr("in string escape code")
			}
		case c < 0x20:
			return s.mark, false, s.syntaxErr("in string literal")
		default:
			s.i++
		}
	}
	return s.mark, false, errUnexpectedEnd
}

// plainEnd returns the index of the first byte from b[i] on that isSpecial,
// or len(b): eight bytes at a time, then one at a time.
func plainEnd(b []byte, i int) int {
	for ; i+8 <= len(b); i += 8 {
		if m := specialBytes(binary.LittleEndian.Uint64(b[i:])); m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for i < len(b) && !isSpecial(b[i]) {
		i++
	}
	return i
}

// isSpecial reports whether a string byte ends the plain fast path: the
// closing quote, an escape, a control byte or the start of a non-ASCII rune.
func isSpecial(c byte) bool { return c == '"' || c == '\\' || c < 0x20 || c >= 0x80 }

// specialBytes is isSpecial for the eight bytes of x at once (little
// endian): the lowest set bit of the result is the high bit of the first
// special byte, zero if there is none. Higher bits may be false alarms
// (borrows from a hit below), so only the lowest counts.
func specialBytes(x uint64) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	q := x ^ (ones * '"')
	bs := x ^ (ones * '\\')
	return ((q-ones)&^q | (bs-ones)&^bs | (x - ones*0x20) | x) & highs
}

// smallInt parses what most numbers in a page are, an optional minus and
// at most 18 digits, as flexInt.UnmarshalJSON would but without its
// trimming and checks; "" is 0 there too. ok is false for anything else,
// which is left to flexInt.UnmarshalJSON.
func smallInt(b []byte) (n int64, ok bool) {
	if len(b) == 0 {
		return 0, true
	}
	neg := b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// number consumes a number token with JSON's grammar and returns its text,
// valid until the next scanner call.
func (s *scanner) number() ([]byte, error) {
	s.mark = s.i
	digits := func() int {
		n := 0
		for s.more() && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
			s.i++
			n++
		}
		return n
	}
	if s.b[s.i] == '-' {
		s.i++
	}
	if !s.more() {
		return nil, errUnexpectedEnd
	}
	switch c := s.b[s.i]; {
	case c == '0':
		s.i++
	case '1' <= c && c <= '9':
		digits()
	default:
		return nil, s.syntaxErr("in numeric literal")
	}
	if s.more() && s.b[s.i] == '.' {
		s.i++
		if digits() == 0 {
			return nil, s.syntaxErr("after decimal point in numeric literal")
		}
	}
	if s.more() && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.more() && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if digits() == 0 {
			return nil, s.syntaxErr("in exponent of numeric literal")
		}
	}
	return s.b[s.mark:s.i], nil
}

// flexInt reads a number, a string holding a number, "" or null (the last
// two are 0), with flexInt.UnmarshalJSON's rules.
func (s *scanner) flexInt() (int64, error) {
	s.ws()
	if s.null() {
		return 0, nil
	}
	if s.i >= len(s.b) {
		return 0, errUnexpectedEnd
	}
	c := s.b[s.i]
	var tok []byte
	switch {
	case c == '"':
		start, _, err := s.strSpan()
		if err != nil {
			return 0, err
		}
		tok = s.b[start:s.i]
		if n, ok := smallInt(tok[1 : len(tok)-1]); ok {
			return n, nil
		}
	case c == '-' || '0' <= c && c <= '9':
		var err error
		if tok, err = s.number(); err != nil {
			return 0, err
		}
		if n, ok := smallInt(tok); ok {
			return n, nil
		}
	default:
		return 0, s.typeErr("a number")
	}
	var f flexInt
	err := f.UnmarshalJSON(tok)
	return int64(f), err
}
