package kmsapi

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// Error is a failed API call: either the service answered with an error
// status (StatusCode, Code, Message, RequestID from the body and the
// X-Request-Id header), or no usable answer came (StatusCode 0, Err set), or a
// 200 whose body could not be decoded (StatusCode 200, Err set).
//
// Error never holds request headers or credentials, so it is safe to log.
type Error struct {
	Endpoint   string // one of the Endpoint* names
	StatusCode int
	Code       string // error_code, e.g. "KMS.0303", "APIGW.0301"
	Message    string // error_msg
	RequestID  string
	Err        error
}

func (e *Error) Error() string {
	s := e.Endpoint + ": "
	if e.StatusCode != 0 && e.StatusCode != http.StatusOK {
		s += "HTTP " + strconv.Itoa(e.StatusCode)
		if e.Code != "" {
			s += " " + e.Code
		}
		if e.Message != "" {
			s += ": " + e.Message
		}
		if e.Err != nil {
			s += ": "
		}
	}
	if e.Err != nil {
		s += e.Err.Error()
	}
	if e.RequestID != "" {
		s += " (request_id=" + e.RequestID + ")"
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// The API documents some fields as strings and returns them as numbers, or
// the other way round. flexInt accepts a JSON number, a string holding a
// number, "" and null; the last two mean 0.
type flexInt int64

func (f *flexInt) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	v, err := dec.ReadValue()
	if err != nil {
		return err
	}
	n, err := parseFlexInt(v)
	*f = flexInt(n)
	return err
}

func parseFlexInt(v jsontext.Value) (int64, error) {
	switch v.Kind() {
	case 'n':
		return 0, nil
	case '0':
		return parseInt(v)
	case '"':
		b := bytes.TrimSpace(v[1 : len(v)-1])
		if len(b) == 0 {
			return 0, nil
		}
		if bytes.IndexByte(b, '\\') < 0 {
			return parseInt(b)
		}
	}
	return 0, fmt.Errorf("expected a number, got %.40q", v)
}

// parseInt parses an integer, also in forms like 1.5e12 that some
// encoders write.
func parseInt(b []byte) (int64, error) {
	if n, err := strconv.ParseInt(string(b), 10, 64); err == nil {
		return n, nil
	}
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v != math.Trunc(v) || math.Abs(v) > 1<<62 {
		return 0, fmt.Errorf("expected an integer, got %.40q", b)
	}
	return int64(v), nil
}

// flexString accepts a JSON string, number or bool as text, and null as "".
type flexString string

func (f *flexString) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	v, err := dec.ReadValue()
	if err == nil {
		var b []byte
		b, err = scalarText(v)
		*f = flexString(b)
	}
	return err
}

// scalarText is the text of a JSON string, number or bool; nil for null.
func scalarText(v jsontext.Value) ([]byte, error) {
	switch v.Kind() {
	case 'n':
		return nil, nil
	case '"':
		return unquote(v)
	case '{', '[':
		return nil, fmt.Errorf("expected a string, got %.20q", v)
	}
	return v, nil
}

// unquote returns the text of a JSON string value; without escapes it
// aliases v.
func unquote(v jsontext.Value) ([]byte, error) {
	if bytes.IndexByte(v, '\\') < 0 {
		return v[1 : len(v)-1], nil
	}
	return jsontext.AppendUnquote(nil, v)
}

// apiTime turns an API timestamp into a time: 0 (or "", null) means none,
// values above 1e12 are milliseconds, smaller ones seconds.
func apiTime(v int64) time.Time {
	switch {
	case v <= 0:
		return time.Time{}
	case v > 1e12:
		return time.UnixMilli(v).UTC()
	default:
		return time.Unix(v, 0).UTC()
	}
}

// decodeError wraps a problem with a 200 answer; an answer with another
// 2xx status gets that status when its decodeFunc returns the error.
func decodeError(endpoint string, format string, args ...any) *Error {
	return &Error{Endpoint: endpoint, StatusCode: http.StatusOK, Err: fmt.Errorf(format, args...)}
}

// decodeOptions accept a member named twice (the last one counts), as
// encoding/json does; checking names for duplicates is a fifth of the
// time a key page takes.
var decodeOptions = jsontext.AllowDuplicateNames(true)

// unmarshal reads the JSON answer of endpoint from r into v, which must
// then have its member: has says whether it does.
func unmarshal(endpoint string, r io.Reader, v any, member string, has func() bool) error {
	if err := json.UnmarshalRead(r, v, decodeOptions); err != nil {
		return decodeError(endpoint, "decoding response: %w", err)
	}
	if !has() {
		return decodeError(endpoint, "response lacks %s", member)
	}
	return nil
}

func decodeQuotas(r io.Reader) ([]Quota, error) {
	var w struct {
		Quotas *struct {
			Resources []struct {
				Type  string  `json:"type"`
				Used  flexInt `json:"used"`
				Quota flexInt `json:"quota"`
			} `json:"resources"`
		} `json:"quotas"`
	}
	if err := unmarshal(EndpointQuotas, r, &w, "quotas", func() bool { return w.Quotas != nil }); err != nil {
		return nil, err
	}
	out := make([]Quota, 0, len(w.Quotas.Resources))
	for _, r := range w.Quotas.Resources {
		out = append(out, Quota{Resource: r.Type, Used: int64(r.Used), Limit: int64(r.Quota)})
	}
	return out, nil
}

func decodeInstances(r io.Reader) (int64, error) {
	var w struct {
		InstanceNum *flexInt `json:"instance_num"`
	}
	if err := unmarshal(EndpointInstances, r, &w, "instance_num", func() bool { return w.InstanceNum != nil }); err != nil {
		return 0, err
	}
	if *w.InstanceNum < 0 {
		return 0, decodeError(EndpointInstances, "negative instance_num %d", *w.InstanceNum)
	}
	return int64(*w.InstanceNum), nil
}

func decodeRegions(r io.Reader) ([]string, error) {
	var w struct {
		Regions *[]string `json:"regions"`
	}
	if err := unmarshal(EndpointRegions, r, &w, "regions", func() bool { return w.Regions != nil }); err != nil {
		return nil, err
	}
	return *w.Regions, nil
}

// decodeTokenBody reads expires_at and the project of an IAM token answer.
// The token itself travels in the X-Subject-Token header.
func decodeTokenBody(body io.Reader) (expires time.Time, projectID string, err error) {
	var w struct {
		Token *struct {
			ExpiresAt string `json:"expires_at"`
			Project   *struct {
				ID string `json:"id"`
			} `json:"project"`
		} `json:"token"`
	}
	if err := unmarshal(EndpointIAMToken, body, &w, "token", func() bool { return w.Token != nil }); err != nil {
		return time.Time{}, "", err
	}
	expires, err = parseAPITimestamp(w.Token.ExpiresAt)
	if err != nil {
		return time.Time{}, "", decodeError(EndpointIAMToken, "token.expires_at: %w", err)
	}
	if w.Token.Project != nil {
		projectID = w.Token.Project.ID
	}
	return expires, projectID, nil
}

type securityKey struct {
	AK, SK, Token      string
	Expires, refreshAt time.Time // refreshAt: set by ecsAuth
}

// decodeSecurityKey reads the ECS metadata securitykey answer.
func decodeSecurityKey(body io.Reader) (securityKey, error) {
	var w struct {
		Credential *struct {
			Access        string `json:"access"`
			Secret        string `json:"secret"`
			SecurityToken string `json:"securitytoken"`
			ExpiresAt     string `json:"expires_at"`
		} `json:"credential"`
	}
	if err := unmarshal(EndpointECSMetadata, body, &w, "credential", func() bool { return w.Credential != nil }); err != nil {
		return securityKey{}, err
	}
	c := w.Credential
	if c.Access == "" || c.Secret == "" {
		// Never echo the values: they are secrets.
		return securityKey{}, decodeError(EndpointECSMetadata, "credential lacks access or secret")
	}
	exp, err := parseAPITimestamp(c.ExpiresAt)
	if err != nil {
		return securityKey{}, decodeError(EndpointECSMetadata, "credential.expires_at: %w", err)
	}
	return securityKey{AK: c.Access, SK: c.Secret, Token: c.SecurityToken, Expires: exp}, nil
}

// parseAPITimestamp parses IAM's "2026-11-23T11:15:04.000000Z" and its
// variants.
func parseAPITimestamp(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, errors.New("missing")
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("unparseable time %.40q", s)
}

// errorFields are the members error answers use, in any of their shapes.
type errorFields struct {
	ErrorCode flexString `json:"error_code"`
	ErrorMsg  flexString `json:"error_msg"`
	Code      flexString `json:"code"`
	Message   flexString `json:"message"`
	RequestID flexString `json:"request_id"`
}

// parseError builds the *Error for a non-2xx answer from either the KMS
// shape {"error":{"error_code","error_msg"}}, the flat API Gateway shape
// {"error_code","error_msg","request_id"}, or IAM's {"error":{"code","message"}}.
// A body that is not JSON still gives the status.
func parseError(endpoint string, status int, header http.Header, body []byte) *Error {
	e := &Error{Endpoint: endpoint, StatusCode: status, RequestID: header.Get("X-Request-Id")}
	var w struct {
		errorFields
		Error jsontext.Value `json:"error"`
	}
	if json.Unmarshal(body, &w) != nil {
		return e
	}
	f := w.errorFields
	var inner errorFields
	var msg string
	switch {
	case len(w.Error) == 0:
	case json.Unmarshal(w.Error, &inner) == nil:
		if inner.ErrorCode != "" || inner.Code != "" || inner.ErrorMsg != "" || inner.Message != "" {
			f.ErrorCode, f.Code, f.ErrorMsg, f.Message = inner.ErrorCode, inner.Code, inner.ErrorMsg, inner.Message
		}
		f.RequestID = cmp.Or(f.RequestID, inner.RequestID)
	case json.Unmarshal(w.Error, &msg) == nil:
		f.ErrorMsg = cmp.Or(f.ErrorMsg, flexString(msg))
	}
	e.Code = clean(string(cmp.Or(f.ErrorCode, f.Code)))
	e.Message = clean(string(cmp.Or(f.ErrorMsg, f.Message)))
	e.RequestID = cmp.Or(e.RequestID, clean(string(f.RequestID)))
	return e
}

// clean keeps error text from the server to one printable line of sane length.
func clean(s string) string {
	const max = 512
	if len(s) > max {
		s = s[:max]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
}
