package kmsapi

import (
	"math"
	"net/http"
	"reflect"
	"testing"
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
// on any input both fail, or both succeed with the same keys.
func FuzzKeyPageMatchesReference(f *testing.F) {
	f.Add([]byte(keyPageDocExample), true)
	f.Add([]byte(keyPageSDKShape), true)
	f.Add([]byte(`{"resources":null,"total_count":"42"}`), false)
	f.Add([]byte(`{"RESOURCES":[{"Resource_ID":"a","tags":[null,{"KEY":"k","value":"v\u00e9"}]}],"total_count":1.0}`), true)
	f.Add([]byte(`{"resources":[{"resource_id":"a\ud800","resource_detail":{"key_state":" 2 "}}],"total_count":"1","x":[[{}],-0.5e3,true]}`), true)
	f.Add(keyPageJSON(0, 3, 3), true)
	f.Fuzz(func(t *testing.T, b []byte, filter bool) {
		got, gerr := decodeKeyPage(b, filter)
		want, werr := decodeKeyPageReference(b, filter)
		if (gerr == nil) != (werr == nil) {
			t.Fatalf("scanner error %v, reference error %v", gerr, werr)
		}
		if gerr == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("scanner and reference differ:\n got %+v\nwant %+v", got, want)
		}
	})
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
}

func repeat(c byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = c
	}
	return b
}

// Recycled bodies are overwritten by the next answer: nothing decoded from
// a body may point into it.
func TestDecodedKeysOutliveTheirBody(t *testing.T) {
	body := append(pooledBody(0), keyPageJSON(0, 50, 50)...)
	body = append(body, make([]byte, 64<<10)...)[:len(keyPageJSON(0, 50, 50))] // poolable size
	want, err := decodeKeyPageReference(body, true)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeKeyPage(body, true)
	if err != nil {
		t.Fatal(err)
	}
	recycleBody(body)
	for i := range body[:cap(body)] {
		body[:cap(body)][i] = 'X'
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("keys changed when their body was overwritten:\n got %+v\nwant %+v", got.Keys[0], want.Keys[0])
	}
}
