package kmsapi

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"math/bits"
	"math/rand/v2"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

// The encoding/json decoder of key pages: simple and obviously faithful to
// encoding/json's rules, and the yardstick for decodeKeyPage's scanner.

type wireTag struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

type wireResource struct {
	ResourceID   string `json:"resource_id"`
	ResourceName string `json:"resource_name"`
	Detail       struct {
		KeyID                 string  `json:"key_id"`
		DomainID              string  `json:"domain_id"`
		KeyAlias              string  `json:"key_alias"`
		KeyDescription        string  `json:"key_description"`
		CreationDate          flexInt `json:"creation_date"`
		ScheduledDeletionDate flexInt `json:"scheduled_deletion_date"`
		ExpirationTime        flexInt `json:"expiration_time"`
		KeyState              flexInt `json:"key_state"`
		DefaultKeyFlag        flexInt `json:"default_key_flag"`
		KeyType               flexInt `json:"key_type"`
	} `json:"resource_detail"`
	Tags []wireTag `json:"tags"`
}

type wireResourcePage struct {
	Resources  []wireResource `json:"resources"`
	TotalCount *flexInt       `json:"total_count"`
}

// decodeKeyPageReference is the encoding/json decoder of key pages that
// decodeKeyPage must agree with.
func decodeKeyPageReference(body []byte, wantResources bool) (KeyPage, error) {
	var w wireResourcePage
	if err := unmarshal(EndpointResourceInstances, body, &w); err != nil {
		return KeyPage{}, err
	}
	if w.TotalCount == nil {
		return KeyPage{}, decodeError(EndpointResourceInstances, http.StatusOK, "response lacks total_count")
	}
	total := int64(*w.TotalCount)
	if total < 0 || total > math.MaxInt32 {
		return KeyPage{}, decodeError(EndpointResourceInstances, http.StatusOK, "implausible total_count %d", total)
	}
	if wantResources && w.Resources == nil && total > 0 {
		return KeyPage{}, decodeError(EndpointResourceInstances, http.StatusOK, "response lacks resources")
	}
	p := KeyPage{Total: int(total), Keys: make([]Key, len(w.Resources))}
	for i := range w.Resources {
		r := &w.Resources[i]
		d := &r.Detail
		k := &p.Keys[i]
		k.ID = d.KeyID
		if k.ID == "" {
			k.ID = r.ResourceID
		}
		if k.ID == "" {
			return KeyPage{}, decodeError(EndpointResourceInstances, http.StatusOK, "resource %d has no key_id or resource_id", i)
		}
		k.Alias = d.KeyAlias
		k.Description = d.KeyDescription
		k.DomainID = d.DomainID
		k.ResourceName = r.ResourceName
		k.State = KeyState(d.KeyState)
		k.Default = d.DefaultKeyFlag == 1
		k.KeyType = int(d.KeyType)
		k.Created = apiTime(d.CreationDate)
		k.ScheduledDeletion = apiTime(d.ScheduledDeletionDate)
		k.Expires = apiTime(d.ExpirationTime)
		if len(r.Tags) > 0 {
			k.Tags = make([]Tag, len(r.Tags))
			for j, t := range r.Tags {
				k.Tags[j] = Tag(t)
			}
		}
	}
	return p, nil
}

// FuzzKeyPageMatchesReference holds the scanner to the reference decoder:
// on any input both fail, or both succeed with the same keys. The scanner
// runs on the whole body and on streams of it cut every which way, through
// windows small enough that tokens straddle refills and outgrow the window.
func FuzzKeyPageMatchesReference(f *testing.F) {
	f.Add([]byte(keyPageDocExample), true)
	f.Add([]byte(keyPageSDKShape), true)
	f.Add([]byte(`{"resources":null,"total_count":"42"}`), false)
	f.Add([]byte(`{"RESOURCES":[{"Resource_ID":"a","tags":[null,{"KEY":"k","value":"v\u00e9"}]}],"total_count":1.0}`), true)
	f.Add([]byte(`{"resources":[{"resource_id":"a\ud800","resource_detail":{"key_state":" 2 "}}],"total_count":"1","x":[[{}],-0.5e3,true]}`), true)
	f.Add([]byte(`{"resources" :[{"resource_id" 	: "k", "resource_name"  :"n","resource_detail":{"key_alias":"n"}}] , "total_count"  :  1  }  `), true)
	f.Add(keyPageJSON(0, 3, 3), true)
	f.Fuzz(func(t *testing.T, b []byte, filter bool) {
		want, werr := decodeKeyPageReference(b, filter)
		check := func(how string, got KeyPage, gerr error) {
			t.Helper()
			if (gerr == nil) != (werr == nil) {
				t.Fatalf("%s: scanner error %v, reference error %v", how, gerr, werr)
			}
			if gerr == nil && !reflect.DeepEqual(got, want) {
				t.Fatalf("%s: scanner and reference differ:\n got %+v\nwant %+v", how, got, want)
			}
		}
		got, gerr := decodeKeyPage(b, filter)
		check("bytes", got, gerr)
		for _, s := range streamsOf(b) {
			got, gerr := decodeStream(s.r, s.window, s.size, filter)
			check(s.name, got, gerr)
		}
		got, gerr = decodeKeyPageFrom(bytes.NewReader(b), int64(len(b)), filter, nil)
		check("pooled window", got, gerr)

		// A read error anywhere, even after the whole body, fails the
		// decoding; of a valid body, with that error (a syntax error met
		// before it may be reported instead).
		boom := errors.New("boom")
		for _, cut := range []int{0, len(b) / 2, len(b)} {
			r := io.MultiReader(iotest.HalfReader(bytes.NewReader(b[:cut])), iotest.ErrReader(boom))
			_, err := decodeStream(r, 5, -1, filter)
			if err == nil || werr == nil && !errors.Is(err, boom) {
				t.Fatalf("read error after %d of %d bytes: got %v", cut, len(b), err)
			}
		}
	})
}

type stream struct {
	name   string
	r      io.Reader
	window int   // initial window size
	size   int64 // size hint given to the decoder
}

// streamsOf returns ways to read b: a byte at a time, half of each ask,
// the data with its io.EOF, and chunks of random length.
func streamsOf(b []byte) []stream {
	n := int64(len(b))
	return []stream{
		{"one byte", iotest.OneByteReader(bytes.NewReader(b)), 1, -1},
		{"half", iotest.HalfReader(bytes.NewReader(b)), 8, n},
		{"data with EOF", iotest.DataErrReader(bytes.NewReader(b)), 3, n},
		{"random chunks", &chunkReader{b: b, rnd: rand.New(rand.NewPCG(uint64(len(b)), 7))}, 16, -1},
		{"window", bytes.NewReader(b), windowSize, n},
	}
}

// chunkReader returns b in chunks of random length, some of them empty.
type chunkReader struct {
	b   []byte
	rnd *rand.Rand
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(c.b), c.rnd.IntN(40))
	copy(p, c.b[:n])
	c.b = c.b[n:]
	return n, nil
}

// decodeStream decodes a page from r through a window starting at the
// given size.
func decodeStream(r io.Reader, window int, size int64, wantResources bool) (KeyPage, error) {
	p := pageScanner{scanner: scanner{b: make([]byte, 0, window), r: r}, size: size}
	return p.decode(wantResources)
}

func TestKeyPageMatchesReferenceOnLargePage(t *testing.T) {
	page := keyPageJSON(0, 1000, 5000)
	got, err := decodeKeyPage(page, true)
	if err != nil {
		t.Fatal(err)
	}
	want, err := decodeKeyPageReference(page, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Keys) != 1000 || !reflect.DeepEqual(got, want) {
		t.Fatalf("scanner and reference differ on a 1000-key page (%d keys)", len(got.Keys))
	}
}

func TestKeyPageRejectsDeepNesting(t *testing.T) {
	deep := []byte(`{"x":` + string(repeat('[', 20000)) + string(repeat(']', 20000)) + `,"total_count":0}`)
	if _, err := decodeKeyPage(deep, true); err == nil {
		t.Fatal("20000 nested arrays accepted")
	}
	if _, err := decodeStream(bytes.NewReader(deep), 64, -1, true); err == nil || !strings.Contains(err.Error(), "exceeded max depth") {
		t.Fatalf("20000 nested arrays streamed: %v", err)
	}
}

func repeat(c byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = c
	}
	return b
}

// A streamed page is read through a window that the next page reuses, and
// a body given whole may be reused by its caller: nothing decoded may point
// into either.
func TestDecodedKeysOutliveTheirBody(t *testing.T) {
	page := keyPageJSON(0, 50, 50)
	want, err := decodeKeyPageReference(page, true)
	if err != nil {
		t.Fatal(err)
	}

	body := bytes.Clone(page)
	got, err := decodeKeyPage(body, true)
	if err != nil {
		t.Fatal(err)
	}
	scribble(body)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("keys changed when their body was overwritten:\n got %+v\nwant %+v", got.Keys[0], want.Keys[0])
	}

	for _, window := range []int{16, 1 << 10, windowSize} {
		r := &recordingReader{r: iotest.HalfReader(bytes.NewReader(page))}
		got, err := decodeStream(r, window, int64(len(page)), true)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.bufs) < 2 {
			t.Fatalf("window %d: %d reads; the test needs refills", window, len(r.bufs))
		}
		for _, b := range r.bufs {
			scribble(b[:cap(b)])
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("window %d: keys changed when the window was overwritten:\n got %+v\nwant %+v", window, got.Keys[0], want.Keys[0])
		}
	}
}

func scribble(b []byte) {
	for i := range b {
		b[i] = 'X'
	}
}

// recordingReader remembers every buffer it was asked to fill: the window.
type recordingReader struct {
	r    io.Reader
	bufs [][]byte
}

func (r *recordingReader) Read(p []byte) (int, error) {
	r.bufs = append(r.bufs, p)
	return r.r.Read(p)
}

// The window holds one token and what follows it: however long the page, a
// window that started small grows only to the largest token.
func TestKeyPageWindowStaysSmall(t *testing.T) {
	page := keyPageJSON(0, 1000, 1000)
	p := pageScanner{scanner: scanner{b: make([]byte, 0, 64), r: bytes.NewReader(page)}, size: -1}
	got, err := p.decode(true)
	if err != nil || len(got.Keys) != 1000 {
		t.Fatalf("%d keys, %v", len(got.Keys), err)
	}
	if cap(p.b) > 256 {
		t.Errorf("window grew to %d bytes for tokens of under 100", cap(p.b))
	}

	// One string token longer than the window makes it grow to fit.
	long := strings.Repeat("d", 100<<10)
	page = []byte(`{"resources":[{"resource_id":"k","resource_detail":{"key_description":"` + long + `"}}],"total_count":1}`)
	p = pageScanner{scanner: scanner{b: make([]byte, 0, 64), r: iotest.HalfReader(bytes.NewReader(page))}, size: -1}
	got, err = p.decode(true)
	if err != nil || len(got.Keys) != 1 || got.Keys[0].Description != long {
		t.Fatalf("long description lost: %v", err)
	}
	if cap(p.b) < len(long) || cap(p.b) > 4*len(long) {
		t.Errorf("window of %d bytes for a %d-byte token", cap(p.b), len(long))
	}
}

// Error offsets count from the start of the body, not of the window.
func TestKeyPageStreamErrorOffset(t *testing.T) {
	page := []byte(`{"resources":[` + strings.Repeat(" ", 5000) + `x]}`)
	_, whole := decodeKeyPage(page, true)
	_, streamed := decodeStream(iotest.HalfReader(bytes.NewReader(page)), 64, -1, true)
	if whole == nil || streamed == nil || whole.Error() != streamed.Error() || !strings.Contains(whole.Error(), "offset 5014") {
		t.Fatalf("whole body: %v; streamed: %v", whole, streamed)
	}
	// A value of the wrong kind is quoted the same way too.
	page = []byte(`{"resources":[{"resource_id":` + strings.Repeat(" ", 500) + `[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]}],"total_count":1}`)
	_, whole = decodeKeyPage(page, true)
	_, streamed = decodeStream(iotest.OneByteReader(bytes.NewReader(page)), 4, -1, true)
	if whole == nil || streamed == nil || whole.Error() != streamed.Error() || !strings.Contains(whole.Error(), `got "[1,2,3,4,5,6,7,8,9,1"`) {
		t.Fatalf("whole body: %v; streamed: %v", whole, streamed)
	}
}

// TestSpecialBytes checks the word-at-a-time tests against byte-at-a-time
// ones: every byte value at every position, among plain and special
// neighbours (a hit below may raise false alarms above, never below).
func TestSpecialBytes(t *testing.T) {
	fills := []byte{'a', '"', 0x00, 0x01, 0x1f, 0x20, 0x21, 0x5c, 0x7f, 0x80, 0xff, 'A', 'Z', '@', '['}
	for _, fill := range fills {
		for pos := range 8 {
			for c := range 256 {
				var w [8]byte
				for j := range w {
					w[j] = fill
				}
				w[pos] = byte(c)
				wantFirst := 8
				for j, b := range w {
					if isSpecial(b) {
						wantFirst = j
						break
					}
				}
				m := specialBytes(binary.LittleEndian.Uint64(w[:]))
				gotFirst := bits.TrailingZeros64(m) / 8
				if gotFirst != wantFirst {
					t.Fatalf("specialBytes(%q): first special at %d, want %d", w, gotFirst, wantFirst)
				}
				for _, n := range []int{8, pos + 1} { // a whole word, and a short tail
					want := slices.ContainsFunc(w[:n], func(b byte) bool { return 'A' <= b && b <= 'Z' || b >= 0x80 })
					if got := hasUpperOrNonASCII(w[:n]); got != want {
						t.Fatalf("hasUpperOrNonASCII(%q) = %v", w[:n], got)
					}
				}
			}
		}
	}
}
