package kmsapi

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"sync"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"golang.org/x/sync/errgroup"

	"github.com/kms-exporter/kms_exporter/internal/apitrace"
)

// maxListedKeys bounds a listing against an absurd total_count.
var maxListedKeys = 1_000_000

// VisitKeys calls fn with every page of keys, one page at a time and in the
// API's order, each key once: the first page tells the total, the rest are
// fetched concurrently (as many at once as the credential allows in flight).
// fn sees a page only once it decoded whole and held together; it must not
// keep the page past its return (its storage is reused), only what it
// copies out of it (the strings are the caller's). An error from fn ends
// the listing. A listing thus holds the pages in flight, not every key.
//
// Paging is by offset over a list that others may change meanwhile: a key
// created or deleted between two page requests shifts the later pages, so
// a key may come twice (it is kept once) or not at all. The listing is
// then off by no more than the keys that changed while it ran, which is
// all offset paging allows; when the total grew, the keys past the first
// total are read too. One answer is one moment of the list, so it must
// hold together on its own: as many keys as its own total_count leaves for
// its offset (up to the limit) and none twice. One that does not is
// broken, not busy, and fails the listing.
func (c *Client) VisitKeys(ctx context.Context, fn func(page []Key) error) error {
	first, err := c.filterKeys(ctx, 0)
	if err != nil {
		return err
	}
	v := &keyVisit{fn: fn, seen: make(map[string]int, first.Total), firstTotal: first.Total}
	if err := v.visit(first); err != nil {
		return err
	}
	if first.Total > MaxPageSize {
		if err := c.visitRest(ctx, v, first); err != nil {
			return err
		}
		if err := c.readOn(ctx, v); err != nil {
			return err
		}
	}
	if v.dups > 0 || v.firstTotal != v.lastTotal {
		apitrace.Note(ctx, "keys changed while listing: total_count %d, then %d; %d keys seen twice, counted once", v.firstTotal, v.lastTotal, v.dups)
	}
	return nil
}

// visitRest fetches the pages after the first concurrently and visits them
// in order: a page that arrives early waits for its turn in its slot of
// the group, so no more pages than the group allows are ever held.
func (c *Client) visitRest(ctx context.Context, v *keyVisit, first keyPage) error {
	n := (first.Total + MaxPageSize - 1) / MaxPageSize
	turn := make([]chan struct{}, n+1) // closed when page i may be visited
	for i := range turn {
		turn[i] = make(chan struct{})
	}
	close(turn[1])
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.opts.Credential.opts.Concurrency)
	for i := 1; i < n; i++ {
		g.Go(func() error {
			p, err := c.filterKeys(gctx, i*MaxPageSize)
			if err != nil {
				return err
			}
			select {
			case <-turn[i]:
			case <-gctx.Done():
				return gctx.Err()
			}
			if err := v.visit(p); err != nil {
				return err
			}
			close(turn[i+1])
			return nil
		})
	}
	return g.Wait()
}

// keyVisit is the state of a listing between its pages: which keys it
// passed on (by ID, in which page) and what the pages told.
type keyVisit struct {
	fn                   func([]Key) error
	seen                 map[string]int // key ID -> the page it came in
	pages, dups          int
	firstTotal, maxTotal int // maxTotal: the largest total after the first page
	lastTotal, end       int // of the last page: its total, where it ended
}

// visit passes on the keys of the next page not seen before. A page that
// lists a key twice is broken.
func (v *keyVisit) visit(p keyPage) error {
	n := v.pages
	kept := p.Keys[:0]
	for _, k := range p.Keys {
		if at, dup := v.seen[k.ID]; dup {
			if at == n {
				return decodeError(EndpointResourceInstances, "page at offset %d lists key %s twice", p.offset, k.ID)
			}
			v.dups++
			continue
		}
		v.seen[k.ID] = n
		kept = append(kept, k)
	}
	if n > 0 {
		v.maxTotal = max(v.maxTotal, p.Total)
	}
	v.pages++
	v.lastTotal, v.end = p.Total, p.offset+len(p.Keys)
	if err := v.fn(kept); err != nil {
		return err
	}
	if cap(p.Keys) >= MaxPageSize {
		clear(p.Keys) // no stale key keeps its strings alive in the pool
		keyPages.Put(&p.Keys)
	}
	return nil
}

// keyPages is the storage of visited pages, for the next page of any
// listing: pages are visited as they arrive, so few are needed at once.
var keyPages sync.Pool

// readOn reads on from where the last page ended while an answer told of
// more keys: the list grew while it was read. The first page is older than
// the others; which of them is the newest is not known.
func (c *Client) readOn(ctx context.Context, v *keyVisit) error {
	total := v.maxTotal
	for offset := v.end; offset < total; {
		p, err := c.filterKeys(ctx, offset)
		if err != nil {
			return err
		}
		if err := v.visit(p); err != nil {
			return err
		}
		total = p.Total
		if len(p.Keys) == 0 {
			break
		}
		offset += len(p.Keys)
	}
	return nil
}

// filterKeys calls resource_instances with action filter for the page at
// offset, decoded into storage from keyPages: each attempt decodes afresh,
// and only a complete page is kept. The page must hold together on its own.
func (c *Client) filterKeys(ctx context.Context, offset int) (keyPage, error) {
	var p keyPage
	var dst []Key
	body := `{"action":"filter","limit":"` + strconv.Itoa(MaxPageSize) + `","offset":"` + strconv.Itoa(offset) + `"}`
	err := c.call(ctx, EndpointResourceInstances, "v1.0", "resource_instances/action", []byte(body), func(resp *http.Response, body io.Reader) (err error) {
		if dst == nil { // taken when the answer is there, not while waiting for it
			if b, ok := keyPages.Get().(*[]Key); ok {
				dst = (*b)[:0]
			}
		}
		p, err = decodeKeyPage(body, resp.ContentLength, dst)
		return err
	})
	switch want := min(MaxPageSize, max(0, p.Total-offset)); {
	case err != nil:
		return keyPage{}, err
	case p.Total > maxListedKeys:
		return keyPage{}, decodeError(EndpointResourceInstances, "total_count %d exceeds the %d keys a listing handles", p.Total, maxListedKeys)
	case len(p.Keys) != want:
		return keyPage{}, decodeError(EndpointResourceInstances, "page at offset %d holds %d keys where its total_count %d leaves room for %d", offset, len(p.Keys), p.Total, want)
	}
	p.offset = offset
	return p, nil
}

// keyPage is one page of resource_instances.
type keyPage struct {
	Keys   []Key
	Total  int // total_count: keys over all pages
	offset int // the offset filterKeys asked for
}

// decodeKeyPage reads a resource_instances filter answer from r, of size
// bytes (-1 if unknown), as it arrives: a 1000-key page is 300-650 KB that
// is never held whole. Keys go into dst's storage while they fit.
func decodeKeyPage(r io.Reader, size int64, dst []Key) (keyPage, error) {
	p := pageDecoder{keys: dst[:0:cap(dst)], seen: make(map[string]string, 64)}
	if size > 0 { // room up front: a key takes over 128 bytes, a tag about 192
		if cap(dst) == 0 {
			p.keys = make([]Key, 0, min(MaxPageSize, size/128+1))
		}
		p.tags = make([]Tag, 0, min(50*MaxPageSize, size/192+1))
	}
	fail := func(format string, args ...any) (keyPage, error) {
		return keyPage{}, decodeError(EndpointResourceInstances, format, args...)
	}
	switch err := json.UnmarshalRead(r, &p, decodeOptions); {
	case err != nil:
		return fail("decoding response: %w", err)
	case !p.hasTotal:
		return fail("response lacks total_count")
	case p.total < 0 || p.total > math.MaxInt32:
		return fail("implausible total_count %d", p.total)
	case !p.hasKeys && p.total > 0:
		return fail("response lacks resources")
	}
	for i := range p.keys {
		if p.keys[i].ID == "" {
			return fail("resource %d has no key_id or resource_id", i)
		}
	}
	if p.keys == nil {
		p.keys = []Key{}
	}
	return keyPage{Total: int(p.total), Keys: p.keys}, nil
}

// pageDecoder reads a page member by member rather than through tagged
// wire structs: in half the time and memory of reflection, and with no
// copy from wire structs into Keys.
type pageDecoder struct {
	dec      *jsontext.Decoder
	keys     []Key
	tags     []Tag             // every key's tags, back to back
	seen     map[string]string // texts that repeat from key to key
	total    int64
	hasKeys  bool   // resources present and not null
	hasTotal bool   // total_count present and not null
	rid      []byte // the current resource's resource_id and resource_name,
	rname    []byte // until its detail is read
}

func (p *pageDecoder) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	p.dec = dec
	return p.members(func(name []byte) (err error) {
		switch string(name) {
		case "resources":
			p.keys, p.hasKeys = p.keys[:0], dec.PeekKind() != 'n'
			return p.elements(func() error {
				p.keys = append(p.keys, Key{})
				return p.resource(&p.keys[len(p.keys)-1])
			})
		case "total_count":
			p.hasTotal = dec.PeekKind() != 'n'
			p.total, err = p.int()
			return err
		}
		return dec.SkipValue()
	})
}

// resource reads one element of resources. resource_id and resource_name
// usually repeat key_id and key_alias, so they get strings of their own
// only when they differ.
func (p *pageDecoder) resource(k *Key) error {
	var haveID, haveName bool
	err := p.members(func(member []byte) (err error) {
		var v []byte
		switch string(member) {
		case "resource_id":
			if v, err = p.text(false); v != nil {
				p.rid, haveID = append(p.rid[:0], v...), true
			}
		case "resource_name":
			if v, err = p.text(false); v != nil {
				p.rname, haveName = append(p.rname[:0], v...), true
			}
		case "tags":
			start := len(p.tags)
			err = p.readTags()
			k.Tags = p.tags[start:len(p.tags):len(p.tags)]
			if len(k.Tags) == 0 {
				k.Tags = nil
			}
		case "resource_detail":
			err = p.members(func(member []byte) error { return p.detail(member, k) })
		default:
			err = p.dec.SkipValue()
		}
		return err
	})
	if k.ID == "" && haveID {
		k.ID = string(p.rid)
	}
	if haveName {
		k.ResourceName = k.Alias
		if string(p.rname) != k.Alias {
			k.ResourceName = string(p.rname)
		}
	}
	return err
}

// detailText are the text members of resource_detail: the field each
// fills, whether a number or bool counts as text (scalar), and whether the
// text repeats from key to key.
var detailText = map[string]struct {
	field           func(*Key) *string
	scalar, repeats bool
}{
	"key_id":                    {func(k *Key) *string { return &k.ID }, false, false},
	"key_alias":                 {func(k *Key) *string { return &k.Alias }, false, false},
	"key_description":           {func(k *Key) *string { return &k.Description }, false, false},
	"domain_id":                 {func(k *Key) *string { return &k.DomainID }, false, true},
	"key_spec":                  {func(k *Key) *string { return &k.KeySpec }, true, true},
	"key_usage":                 {func(k *Key) *string { return &k.KeyUsage }, true, true},
	"origin":                    {func(k *Key) *string { return &k.Origin }, true, true},
	"key_rotation_enabled":      {func(k *Key) *string { return &k.RotationEnabled }, true, true},
	"sys_enterprise_project_id": {func(k *Key) *string { return &k.EnterpriseProjectID }, true, true},
}

// detailNumbers are the number members of resource_detail.
var detailNumbers = map[string]func(*Key, int64){
	"key_state":               func(k *Key, n int64) { k.State = KeyState(n) },
	"default_key_flag":        func(k *Key, n int64) { k.Default = n == 1 },
	"key_type":                func(k *Key, n int64) { k.KeyType = int(n) },
	"creation_date":           func(k *Key, n int64) { k.Created = apiTime(n) },
	"scheduled_deletion_date": func(k *Key, n int64) { k.ScheduledDeletion = apiTime(n) },
	"expiration_time":         func(k *Key, n int64) { k.Expires = apiTime(n) },
}

// detail reads the member name of resource_detail into k.
func (p *pageDecoder) detail(name []byte, k *Key) error {
	if d, ok := detailText[string(name)]; ok {
		s, err := p.string(d.scalar, d.repeats)
		*d.field(k) = s
		return err
	}
	if set, ok := detailNumbers[string(name)]; ok {
		n, err := p.int()
		set(k, n)
		return err
	}
	return p.dec.SkipValue()
}

func (p *pageDecoder) readTags() error {
	return p.elements(func() error {
		var t Tag
		err := p.members(func(name []byte) (err error) {
			switch string(name) {
			case "key":
				t.Key, err = p.string(false, true)
			case "value":
				t.Value, err = p.string(false, true)
			default:
				err = p.dec.SkipValue()
			}
			return err
		})
		p.tags = append(p.tags, t)
		return err
	})
}

// members calls fn with the name of each member of the object at hand, for
// fn to read the value; null counts as an empty object. The name is valid
// until the next read.
func (p *pageDecoder) members(fn func(name []byte) error) error {
	if ok, err := p.open('{'); !ok {
		return err
	}
	for p.dec.PeekKind() != '}' {
		v, err := p.dec.ReadValue()
		if err != nil {
			return err
		}
		name, err := unquote(v)
		if err == nil {
			err = fn(name)
		}
		if err != nil {
			return err
		}
	}
	_, err := p.dec.ReadToken()
	return err
}

// elements calls fn for each element of the array at hand, for fn to read
// it; null counts as an empty array.
func (p *pageDecoder) elements(fn func() error) error {
	if ok, err := p.open('['); !ok {
		return err
	}
	for p.dec.PeekKind() != ']' {
		if err := fn(); err != nil {
			return err
		}
	}
	_, err := p.dec.ReadToken()
	return err
}

// open reads the start of an object or array (kind '{' or '['); at null,
// which it reads, it reports false.
func (p *pageDecoder) open(kind jsontext.Kind) (bool, error) {
	switch k := p.dec.PeekKind(); k {
	case kind:
		_, err := p.dec.ReadToken()
		return err == nil, err
	case 'n':
		return false, p.dec.SkipValue()
	case 0:
		_, err := p.dec.ReadToken() // the syntax or read error
		return false, err
	default:
		return false, fmt.Errorf("%s: expected %v, got %v", p.dec.StackPointer(), kind, k)
	}
}

// text reads a string, or with scalar also a number or bool, as text; nil
// for null. It is valid until the next read.
func (p *pageDecoder) text(scalar bool) ([]byte, error) {
	v, err := p.dec.ReadValue()
	if err != nil {
		return nil, err
	}
	if k := v.Kind(); !scalar && k != '"' && k != 'n' {
		return nil, fmt.Errorf("%s: expected a string, got %.20q", p.dec.StackPointer(), v)
	}
	b, err := scalarText(v)
	if err != nil {
		err = fmt.Errorf("%s: %w", p.dec.StackPointer(), err)
	}
	return b, err
}

// string reads text as a string. With repeats, texts that repeat from key
// to key (tags, the domain, key specs) are allocated once a page.
func (p *pageDecoder) string(scalar, repeats bool) (string, error) {
	b, err := p.text(scalar)
	if err != nil || !repeats {
		return string(b), err
	}
	if s, ok := p.seen[string(b)]; ok {
		return s, nil
	}
	s := string(b)
	if len(p.seen) < 1024 {
		p.seen[s] = s
	}
	return s, nil
}

// int reads a flexInt.
func (p *pageDecoder) int() (int64, error) {
	v, err := p.dec.ReadValue()
	if err != nil {
		return 0, err
	}
	n, err := parseFlexInt(v)
	if err != nil {
		err = fmt.Errorf("%s: %w", p.dec.StackPointer(), err)
	}
	return n, err
}
