package kmsfake

import (
	"cmp"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/kms-exporter/kms_exporter/kmsapi"
)

// project is a Project with every key's JSON prepared, so a 1000-key page
// is a few appends per key rather than a reflection walk.
type project struct {
	Project
	keys []keyJSON
}

// keyJSON is one resources[] entry split around its numeric fields, which
// are written per response in the chosen encoding.
type keyJSON struct {
	head []byte // `{"resource_id":..,"resource_detail":{..."key_description":"..",`
	tail []byte // the unknown extra fields, resource_name and tags, to the closing brace
	// Numeric fields; a zero time is written as "".
	createdMs, deletionMs, expiresMs, state, flag, keyType int64
}

func newProject(p Project) *project {
	pp := &project{Project: p}
	pp.Quotas = append([]kmsapi.Quota(nil), p.Quotas...)
	pp.Keys = append([]kmsapi.Key(nil), p.Keys...)
	pp.keys = make([]keyJSON, len(pp.Keys))
	for i, k := range pp.Keys {
		pp.keys[i] = encodeKey(k)
	}
	return pp
}

func jsonString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // a string always marshals
	return append(b, q...)
}

func encodeKey(k kmsapi.Key) keyJSON {
	var h []byte
	h = append(h, `{"resource_id":`...)
	h = jsonString(h, k.ID)
	h = append(h, `,"resource_detail":{"key_id":`...)
	h = jsonString(h, k.ID)
	h = append(h, `,"domain_id":`...)
	h = jsonString(h, k.DomainID)
	h = append(h, `,"key_alias":`...)
	h = jsonString(h, k.Alias)
	h = append(h, `,"key_description":`...)
	h = jsonString(h, k.Description)
	h = append(h, ',')

	// The attributes the documentation's example leaves out, from the key
	// or else made up from it, and members live answers carry that clients
	// must ignore.
	spec := "AES_256"
	if k.KeyType != 1 {
		spec = "RSA_2048"
	}
	origin := "kms"
	if k.State == kmsapi.StatePendingImport {
		origin = "external"
	}
	var t []byte
	t = append(t, `"origin":`...)
	t = jsonString(t, cmp.Or(k.Origin, origin))
	t = append(t, `,"key_spec":`...)
	t = jsonString(t, cmp.Or(k.KeySpec, spec))
	t = append(t, `,"key_usage":`...)
	t = jsonString(t, cmp.Or(k.KeyUsage, "ENCRYPT_DECRYPT"))
	if k.RotationEnabled != "" {
		t = append(t, `,"key_rotation_enabled":`...)
		t = jsonString(t, k.RotationEnabled)
	}
	t = append(t, `,"keystore_id":"0","key_label":"","partition_type":"1","sys_enterprise_project_id":`...)
	t = jsonString(t, cmp.Or(k.EnterpriseProjectID, "0"))
	t = append(t, `},"resource_name":`...)
	t = jsonString(t, k.ResourceName)
	t = append(t, `,"tags":[`...)
	for i, tag := range k.Tags {
		if i > 0 {
			t = append(t, ',')
		}
		t = append(t, `{"key":`...)
		t = jsonString(t, tag.Key)
		t = append(t, `,"value":`...)
		t = jsonString(t, tag.Value)
		t = append(t, '}')
	}
	t = append(t, "]}"...)

	kj := keyJSON{head: h, tail: t, state: int64(k.State), keyType: int64(k.KeyType)}
	if !k.Created.IsZero() {
		kj.createdMs = k.Created.UnixMilli()
	}
	if !k.ScheduledDeletion.IsZero() {
		kj.deletionMs = k.ScheduledDeletion.UnixMilli()
	}
	if !k.Expires.IsZero() {
		kj.expiresMs = k.Expires.UnixMilli()
	}
	if k.Default {
		kj.flag = 1
	}
	return kj
}

// appendNum writes v as a JSON number or, with str, as a JSON string.
func appendNum(b []byte, v int64, str bool) []byte {
	if str {
		b = append(b, '"')
		b = strconv.AppendInt(b, v, 10)
		return append(b, '"')
	}
	return strconv.AppendInt(b, v, 10)
}

// appendTime writes a millisecond timestamp; 0 (none) is "".
func appendTime(b []byte, ms int64, str bool) []byte {
	if ms == 0 {
		return append(b, `""`...)
	}
	return appendNum(b, ms, str)
}

func (k *keyJSON) size() int { return len(k.head) + len(k.tail) + 140 }

func (k *keyJSON) appendTo(b []byte, str bool) []byte {
	b = append(b, k.head...)
	b = append(b, `"creation_date":`...)
	b = appendTime(b, k.createdMs, str)
	b = append(b, `,"scheduled_deletion_date":`...)
	b = appendTime(b, k.deletionMs, str)
	b = append(b, `,"key_state":`...)
	b = appendNum(b, k.state, str)
	b = append(b, `,"default_key_flag":`...)
	b = appendNum(b, k.flag, str)
	b = append(b, `,"key_type":`...)
	b = appendNum(b, k.keyType, str)
	b = append(b, `,"expiration_time":`...)
	b = appendTime(b, k.expiresMs, str)
	b = append(b, ',')
	return append(b, k.tail...)
}

type tagFilter struct {
	Key    string   `json:"key"`
	Values []string `json:"values"`
}

type match struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// selectKeys returns the indexes of the keys matching every tag filter and
// every match, or nil and all=true when nothing filters.
func (p *project) selectKeys(tags []tagFilter, matches []match) (idx []int, all bool) {
	if len(tags) == 0 && len(matches) == 0 {
		return nil, true
	}
	idx = []int{}
	for i := range p.Keys {
		if keyMatches(&p.Keys[i], tags, matches) {
			idx = append(idx, i)
		}
	}
	return idx, false
}

func keyMatches(k *kmsapi.Key, tags []tagFilter, matches []match) bool {
	for _, m := range matches {
		// Only resource_name is accepted (checked before); substring match.
		if !strings.Contains(k.ResourceName, m.Value) {
			return false
		}
	}
	for _, f := range tags {
		found := false
		for _, t := range k.Tags {
			if t.Key != f.Key {
				continue
			}
			if len(f.Values) == 0 {
				found = true
				break
			}
			for _, v := range f.Values {
				if t.Value == v {
					found = true
					break
				}
			}
			if found {
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
