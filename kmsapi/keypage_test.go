package kmsapi

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/go-json-experiment/json/jsontext"
)

// The documentation's example, with the missing comma before total_count
// put back: numbers where the SDK has strings, total_count a string.
const keyPageDocExample = `{
 "resources": [{
       "resource_id": "90c03e67-5534-4ed0-acfa-89780e47a535",
       "resource_detail": {
              "key_id": "90c03e67-5534-4ed0-acfa-89780e47a535",
              "domain_id": "4B688Fb77412Aee5570E7ecdbeB5afdc",
              "key_alias": "tagTest_xmdmi",
              "key_description": "123",
              "creation_date": 1521449277000,
              "scheduled_deletion_date": "",
              "key_state": 2,
              "default_key_flag": 0,
              "key_type": 1
       },
       "resource_name": "tagTest_xmdmi",
       "tags": [{"key": "$", "value": "testValue!"}, {"key": "1", "value": "ccwZ"}]
 }],
 "total_count": "1"}`

// The SDK's shape: everything a string, seconds timestamps, unknown fields.
const keyPageSDKShape = `{"resources":[{"resource_id":"r1","resource_detail":{"key_id":"k1","key_alias":"obs/default",
"key_state":"4","default_key_flag":"1","key_type":"1","creation_date":"1502799822","scheduled_deletion_date":"1503799822000",
"expiration_time":null,"key_label":"x","partition_type":"1"},"resource_name":"obs/default","tags":[]},
{"resource_id":"r2","resource_detail":{"key_state":"9","creation_date":"0"},"tags":null}],"total_count":2}`

// All 17 members of the SDK's KeyDetails, in both encodings: strings (the
// SDK) and numbers and bools (another example).
const keyPageFullShape = `{"resources":[
{"resource_id":"k1","resource_detail":{"key_id":"k1","domain_id":"d","key_alias":"imported","realm":"cn-north-4",
"key_spec":"AES_256","key_usage":"ENCRYPT_DECRYPT","key_description":"","creation_date":"1502799822000",
"scheduled_deletion_date":"","key_state":"5","default_key_flag":"0","key_type":"1","expiration_time":"1893456000000",
"origin":"external","key_rotation_enabled":"false","sys_enterprise_project_id":"0","keystore_id":"0"},"resource_name":"imported","tags":[]},
{"resource_id":"k2","resource_detail":{"key_id":"k2","key_spec":"SM2","key_usage":"SIGN_VERIFY","origin":"kms",
"key_rotation_enabled":true,"sys_enterprise_project_id":"b4d2c3e1-ep","expiration_time":1893456000,"key_state":2}}
],"total_count":2}`

func decodePage(t *testing.T, body string) keyPage {
	t.Helper()
	p, err := decodeKeyPage(strings.NewReader(body), int64(len(body)), nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDecodeKeyPageDocExample(t *testing.T) {
	p := decodePage(t, keyPageDocExample)
	if p.Total != 1 || len(p.Keys) != 1 {
		t.Fatalf("got %+v", p)
	}
	want := Key{
		ID: "90c03e67-5534-4ed0-acfa-89780e47a535", Alias: "tagTest_xmdmi", Description: "123",
		DomainID: "4B688Fb77412Aee5570E7ecdbeB5afdc", ResourceName: "tagTest_xmdmi",
		State: StateEnabled, KeyType: 1, Created: time.UnixMilli(1521449277000).UTC(),
		Tags: []Tag{{"$", "testValue!"}, {"1", "ccwZ"}},
	}
	if !reflect.DeepEqual(p.Keys[0], want) {
		t.Errorf("got  %+v\nwant %+v", p.Keys[0], want)
	}
}

func TestDecodeKeyPageSDKShape(t *testing.T) {
	p := decodePage(t, keyPageSDKShape)
	k := p.Keys[0]
	if k.ID != "k1" || k.State != StatePendingDeletion || !k.Default || k.KeyType != 1 || !k.Expires.IsZero() || k.Tags != nil {
		t.Errorf("got %+v", k)
	}
	if !k.Created.Equal(time.Unix(1502799822, 0)) || !k.ScheduledDeletion.Equal(time.UnixMilli(1503799822000)) {
		t.Errorf("times: %v %v", k.Created, k.ScheduledDeletion)
	}
	// resource_id stands in for a missing key_id.
	k = p.Keys[1]
	if k.ID != "r2" || k.State.String() != "unknown" || !k.Created.IsZero() || k.Tags != nil {
		t.Errorf("got %+v", k)
	}
}

// Every attribute of the SDK's model is read in either encoding, and one
// the answer leaves out is "" or zero, never an error.
func TestDecodeKeyPageEveryAttribute(t *testing.T) {
	p := decodePage(t, keyPageFullShape)
	got := [][]string{}
	for _, k := range p.Keys {
		got = append(got, []string{k.KeySpec, k.KeyUsage, k.Origin, k.RotationEnabled, k.EnterpriseProjectID, k.Expires.Format(time.RFC3339)})
	}
	want := [][]string{
		{"AES_256", "ENCRYPT_DECRYPT", "external", "false", "0", "2030-01-01T00:00:00Z"},
		{"SM2", "SIGN_VERIFY", "kms", "true", "b4d2c3e1-ep", "2030-01-01T00:00:00Z"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	k := decodePage(t, keyPageDocExample).Keys[0]
	if k.KeySpec != "" || k.KeyUsage != "" || k.Origin != "" || k.RotationEnabled != "" || k.EnterpriseProjectID != "" || !k.Expires.IsZero() {
		t.Errorf("absent attributes decoded as %+v", k)
	}
}

// TestAPIPageExamples decodes the example answers of the API reference
// pages as they are printed there.
func TestAPIPageExamples(t *testing.T) {
	example := func(page string, n int) string {
		t.Helper()
		b, err := os.ReadFile("testdata/apipages/" + page)
		if err != nil {
			t.Fatal(err)
		}
		// The page's key example lacks the comma before total_count.
		text := strings.Replace(string(b), "}]\n     \"total_count\"", "}],\n     \"total_count\"", 1)
		text = text[strings.Index(strings.ToLower(text), "example response"):]
		for i := 1; ; i++ {
			text = text[strings.Index(text, "{"):]
			dec := jsontext.NewDecoder(strings.NewReader(text))
			v, err := dec.ReadValue()
			if err != nil {
				t.Fatalf("%s: %v", page, err)
			}
			if i == n {
				return string(v)
			}
			text = text[dec.InputOffset():]
		}
	}
	q, err := decodeQuotas(strings.NewReader(example("user-quotas.txt", 1)))
	if fmt.Sprint(q) != "[{CMK 20 20} {grant_per_CMK 0 100}]" || err != nil {
		t.Errorf("quotas: %v, %v", q, err)
	}
	n, err := decodeInstances(strings.NewReader(example("user-instances.txt", 1)))
	if n != 15 || err != nil {
		t.Errorf("instances: %v, %v", n, err)
	}
	r, err := decodeRegions(strings.NewReader(example("regions.txt", 1)))
	if fmt.Sprint(r) != "[cn-north-2 cn-north-4 cn-north-1]" || err != nil {
		t.Errorf("regions: %v, %v", r, err)
	}
	p := decodePage(t, example("resource-instances.txt", 1))
	if k := p.Keys[0]; p.Total != 1 || len(p.Keys) != 1 || k.Alias != "tagTest_xmdmi" || k.State != StateEnabled || len(k.Tags) != 10 {
		t.Errorf("resource_instances: %+v", p)
	}
	e := parseError(EndpointResourceInstances, 400, nil, []byte(example("resource-instances.txt", 2)))
	if e.Code != "KMS.XXXX" || e.Message != "XXX" {
		t.Errorf("error example: %#v", e)
	}
}

func TestDecodeRejectsUnexpected(t *testing.T) {
	page := func(b string) error { _, err := decodeKeyPage(strings.NewReader(b), -1, nil); return err }
	for _, tc := range []struct {
		name string
		fn   func(string) error
		body string
		want string // in the error
	}{
		{"quotas missing", func(b string) error { _, err := decodeQuotas(strings.NewReader(b)); return err }, `{"other":1}`, "lacks quotas"},
		{"quotas wrong type", func(b string) error { _, err := decodeQuotas(strings.NewReader(b)); return err }, `{"quotas":[]}`, "/quotas"},
		{"instances missing", func(b string) error { _, err := decodeInstances(strings.NewReader(b)); return err }, `{}`, "lacks instance_num"},
		{"instances text", func(b string) error { _, err := decodeInstances(strings.NewReader(b)); return err }, `{"instance_num":"many"}`, "/instance_num"},
		{"page no total", page, `{"resources":[]}`, "lacks total_count"},
		{"page no resources", page, `{"total_count":3}`, "lacks resources"},
		{"page null resources", page, `{"resources":null,"total_count":3}`, "lacks resources"},
		{"page negative", page, `{"resources":[],"total_count":-1}`, "implausible total_count -1"},
		{"page bad state", page, `{"resources":[{"resource_id":"a","resource_detail":{"key_state":"x"}}],"total_count":1}`, "/resources/0/resource_detail/key_state"},
		{"page bad alias", page, `{"resources":[{"resource_id":"a","resource_detail":{"key_alias":7}}],"total_count":1}`, "/resources/0/resource_detail/key_alias"},
		{"page bad tags", page, `{"resources":[{"resource_id":"a","tags":{}}],"total_count":1}`, "/resources/0/tags"},
		{"page no id", page, `{"resources":[{}],"total_count":1}`, "resource 0 has no key_id"},
		{"page trailing data", page, `{"resources":[],"total_count":0} {}`, "decoding response"},
		{"page not an object", page, `[]`, "decoding response"},
		{"regions missing", func(b string) error { _, err := decodeRegions(strings.NewReader(b)); return err }, `null`, "lacks regions"},
		{"html", func(b string) error { _, err := decodeRegions(strings.NewReader(b)); return err }, `<html>oops</html>`, "decoding response"},
	} {
		err := tc.fn(tc.body)
		e := mustError(t, err)
		if e.StatusCode != http.StatusOK || e.Err == nil || e.Endpoint == "" || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want it to say %q", tc.name, err, tc.want)
		}
	}
}

func TestKeyPageRejectsDeepNesting(t *testing.T) {
	deep := `{"x":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `,"total_count":0}`
	if _, err := decodeKeyPage(strings.NewReader(deep), -1, nil); err == nil || !strings.Contains(err.Error(), "depth") {
		t.Fatalf("20000 nested arrays: %v", err)
	}
}

// A page decodes the same however its bytes arrive, and keys are stored
// in the storage given while they fit.
func TestKeyPageStreams(t *testing.T) {
	page := keyPageJSON(0, 300, 300)
	want, err := decodeKeyPage(bytes.NewReader(page), int64(len(page)), nil)
	if err != nil || len(want.Keys) != 300 {
		t.Fatal(len(want.Keys), err)
	}
	for name, r := range map[string]io.Reader{
		"one byte":      iotest.OneByteReader(bytes.NewReader(page)),
		"half":          iotest.HalfReader(bytes.NewReader(page)),
		"data with EOF": iotest.DataErrReader(bytes.NewReader(page)),
	} {
		dst := make([]Key, 300)
		got, err := decodeKeyPage(r, -1, dst[:0])
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %v", name, err)
		}
		if &got.Keys[0] != &dst[0] {
			t.Errorf("%s: keys not stored in the storage given", name)
		}
	}
}

// A read error anywhere, even after the whole page, fails the page with
// that error.
func TestKeyPageReadError(t *testing.T) {
	page := keyPageJSON(0, 20, 20)
	boom := errors.New("boom")
	for _, cut := range []int{0, len(page) / 2, len(page)} {
		r := io.MultiReader(bytes.NewReader(page[:cut]), iotest.ErrReader(boom))
		if _, err := decodeKeyPage(r, -1, nil); !errors.Is(err, boom) {
			t.Errorf("read error after %d of %d bytes: got %v", cut, len(page), err)
		}
	}
}

// Decoded keys own their strings: the buffers the body was read into may
// be reused as soon as the page is decoded.
func TestDecodedKeysOutliveTheirBody(t *testing.T) {
	page := keyPageJSON(0, 50, 50)
	want := decodePage(t, string(page))
	r := &recordingReader{r: iotest.HalfReader(bytes.NewReader(page))}
	got, err := decodeKeyPage(r, -1, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range r.bufs {
		for i := range b[:cap(b)] {
			b[i] = 'X'
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("keys changed when their buffers were overwritten:\n got %+v\nwant %+v", got.Keys[0], want.Keys[0])
	}
}

// recordingReader remembers every buffer it was asked to fill.
type recordingReader struct {
	r    io.Reader
	bufs [][]byte
}

func (r *recordingReader) Read(p []byte) (int, error) {
	r.bufs = append(r.bufs, p)
	return r.r.Read(p)
}

// keyPageJSON renders keys [offset, offset+n) of a listing of total keys.
func keyPageJSON(offset, n, total int) []byte {
	var b strings.Builder
	b.WriteString(`{"resources":[`)
	for i := offset; i < offset+n; i++ {
		if i > offset {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"resource_id":"key-%06d","resource_detail":{"key_id":"key-%06d","key_alias":"alias-%d","domain_id":"d","key_description":"","creation_date":"1502799822000","scheduled_deletion_date":"","key_state":"2","default_key_flag":"0","key_type":"1"},"resource_name":"alias-%d","tags":[{"key":"env","value":"prod"}]}`, i, i, i, i)
	}
	fmt.Fprintf(&b, `],"total_count":%d}`, total)
	return []byte(b.String())
}
