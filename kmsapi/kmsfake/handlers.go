package kmsfake

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/kms-exporter/kms_exporter/internal/sign"
	"github.com/kms-exporter/kms_exporter/kmsapi"
)

const (
	maxBody      = 1 << 20
	maxClockSkew = 15 * time.Minute
	sdkDateFmt   = "20060102T150405Z"
	iamTimeFmt   = "2006-01-02T15:04:05.000000Z"
)

func (s *Server) serve(rw *responder, r *http.Request, rt route) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return // the client went away
	}
	if len(body) > maxBody {
		rw.kmsError(http.StatusBadRequest, "KMS.0202", "The request body is too large.")
		return
	}
	switch rt.endpoint {
	case kmsapi.EndpointIAMToken:
		if r.URL.Path == idTokenPath {
			s.exchangeIDToken(rw, r, body)
			return
		}
		s.issueToken(rw, body)
		return
	case kmsapi.EndpointECSMetadata:
		s.metadata(rw, r)
		return
	}

	who, ok := s.authenticate(rw, r, body, rt)
	if !ok {
		return
	}
	var p *project
	if rt.projectID != "" {
		p = s.projects[rt.projectID]
		if p == nil {
			rw.kmsError(http.StatusForbidden, "KMS.0321", "The project ID in the URL is not a project of this account.")
			return
		}
		if h := r.Header.Get("X-Project-Id"); h != "" && h != rt.projectID {
			rw.kmsError(http.StatusForbidden, "KMS.0321", "The X-Project-Id header does not match the project ID in the URL.")
			return
		}
	}
	if !s.allow(who) {
		s.mu.Lock()
		limit := int(s.rps)
		s.mu.Unlock()
		rw.throttled(max(limit, 1))
		return
	}

	switch rt.endpoint {
	case kmsapi.EndpointQuotas:
		s.quotas(rw, p)
	case kmsapi.EndpointInstances:
		var b []byte
		b = append(b, `{"instance_num":`...)
		b = appendNum(b, p.Instances, s.useStrings())
		rw.raw(http.StatusOK, append(b, '}'))
	case kmsapi.EndpointResourceInstances:
		s.resourceInstances(rw, p, body)
	case kmsapi.EndpointRegions:
		s.regions(rw, r)
	case kmsapi.EndpointIAMProjects:
		s.listProjects(rw, r)
	case kmsapi.EndpointIAMProjectList:
		s.listAuthProjects(rw, r)
	}
}

// authenticate checks X-Auth-Token or the SDK-HMAC-SHA256 signature and
// names the principal for the rate limit.
func (s *Server) authenticate(rw *responder, r *http.Request, body []byte, rt route) (string, bool) {
	if tok := r.Header.Get("X-Auth-Token"); tok != "" {
		s.mu.Lock()
		t := s.tokens[tok]
		var expired bool
		if t != nil {
			expired = t.revoked || !s.now().Before(t.expires)
		}
		s.mu.Unlock()
		switch {
		case t == nil:
			rw.apigwError(http.StatusUnauthorized, "APIGW.0301", "Incorrect IAM authentication information: decrypt token fail")
			return "", false
		case expired && rt.kmsPath:
			rw.kmsError(http.StatusUnauthorized, "KMS.0303", "The token has expired.")
			return "", false
		case expired:
			rw.apigwError(http.StatusUnauthorized, "APIGW.0307", "The token must be updated.")
			return "", false
		case rt.projectID != "" && t.projectID != rt.projectID:
			rw.kmsError(http.StatusForbidden, "KMS.0321", "The project ID in the URL does not match the token.")
			return "", false
		}
		return "user:" + t.user, true
	}

	authz := r.Header.Get("Authorization")
	if authz == "" {
		rw.apigwError(http.StatusUnauthorized, "APIGW.0301", "Incorrect IAM authentication information: no Authorization header or X-Auth-Token")
		return "", false
	}
	fail := func(why string) (string, bool) {
		rw.apigwError(http.StatusUnauthorized, "APIGW.0301", "Incorrect IAM authentication information: "+why)
		return "", false
	}
	akID, signed, sig, err := sign.ParseAuthorization(authz)
	if err != nil {
		return fail("malformed Authorization header")
	}
	ak, ok := s.aks[akID]
	if !ok {
		return fail("unknown access key")
	}
	date := r.Header.Get(sign.HeaderSdkDate)
	at, err := time.Parse(sdkDateFmt, date)
	if err != nil {
		return fail("missing or malformed X-Sdk-Date")
	}
	if skew := s.clock().Sub(at); skew > maxClockSkew || skew < -maxClockSkew {
		return fail("X-Sdk-Date is more than 15 minutes from the server time")
	}
	if !slices.Contains(signed, "x-sdk-date") {
		return fail("x-sdk-date is not signed")
	}
	if ak.SecurityToken != "" {
		got := r.Header.Get(sign.HeaderSecToken)
		if got == "" {
			return fail("temporary credentials need X-Security-Token")
		}
		if !hmac.Equal([]byte(got), []byte(ak.SecurityToken)) || !slices.Contains(signed, "x-security-token") {
			return fail("invalid security token")
		}
	}
	want := sign.Signature(r, body, signed, ak.SK, date)
	if !hmac.Equal([]byte(want), []byte(sig)) {
		return fail("verify aksk signature fail")
	}
	return "ak:" + akID, true
}

func (s *Server) quotas(rw *responder, p *project) {
	str := s.useStrings()
	type resource struct { // used and quota: numbers, or strings holding them
		Type  string          `json:"type"`
		Used  json.RawMessage `json:"used"`
		Quota json.RawMessage `json:"quota"`
	}
	rs := make([]resource, 0, len(p.Quotas))
	for _, q := range p.Quotas {
		rs = append(rs, resource{q.Resource, appendNum(nil, q.Used, str), appendNum(nil, q.Limit, str)})
	}
	b, _ := json.Marshal(map[string]any{"quotas": map[string]any{"resources": rs}})
	rw.raw(http.StatusOK, b)
}

type resourceRequest struct {
	Action   *string         `json:"action"`
	Limit    json.RawMessage `json:"limit"`
	Offset   json.RawMessage `json:"offset"`
	Tags     []tagFilter     `json:"tags"`
	Matches  []match         `json:"matches"`
	Sequence string          `json:"sequence"`
}

// stringNumber parses a limit/offset: absent is ok=false, anything but a
// JSON string of an integer is an error.
func stringNumber(raw json.RawMessage) (n int, present bool, valid bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, false, true
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return 0, true, false
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, true, false
	}
	return n, true, true
}

func (s *Server) resourceInstances(rw *responder, p *project, body []byte) {
	req, limit, offset, ok := parseResourceRequest(rw, body)
	if !ok {
		return
	}
	if *req.Action == "filter" {
		s.keyPageHook(p.ID, offset)
	}
	ks := p.keys()
	idx, all := ks.selectKeys(req.Tags, req.Matches)
	total := len(idx)
	if all {
		total = len(ks.json)
	}
	str := s.useStrings()
	s.mu.Lock()
	detail := s.detail
	s.mu.Unlock()
	if *req.Action == "count" {
		b := []byte(`{"resources":null,"total_count":`)
		b = appendNum(b, int64(total), str)
		rw.raw(http.StatusOK, append(b, '}'))
		return
	}

	from, to := min(offset, total), min(offset+limit, total)
	key := func(i int) *keyJSON {
		if all {
			return &ks.json[i]
		}
		return &ks.json[idx[i]]
	}
	size := 64
	for i := from; i < to; i++ {
		size += key(i).size()
	}
	b := make([]byte, 0, size)
	b = append(b, `{"resources":[`...)
	for i := from; i < to; i++ {
		if i > from {
			b = append(b, ',')
		}
		b = key(i).appendTo(b, str, detail)
	}
	b = append(b, `],"total_count":`...)
	b = appendNum(b, int64(total), str)
	rw.raw(http.StatusOK, append(b, '}'))
}

// parseResourceRequest reads and checks a resource_instances body as the
// API does, answering the error itself when it is not valid.
func parseResourceRequest(rw *responder, body []byte) (req resourceRequest, limit, offset int, ok bool) {
	if err := json.Unmarshal(body, &req); err != nil {
		rw.kmsError(http.StatusBadRequest, "KMS.0202", "The request body is not valid JSON.")
		return req, 0, 0, false
	}
	if req.Action == nil || *req.Action == "" {
		rw.kmsError(http.StatusBadRequest, "KMS.0204", "Missing parameter: action.")
		return req, 0, 0, false
	}
	limit, hasLimit, okLimit := stringNumber(req.Limit)
	offset, hasOffset, okOffset := stringNumber(req.Offset)
	fail := func(status int, code, msg string) (resourceRequest, int, int, bool) {
		rw.kmsError(status, code, msg)
		return req, 0, 0, false
	}
	switch *req.Action {
	case "count":
		if hasLimit || hasOffset {
			return fail(http.StatusBadRequest, "KMS.0418", "The offset and limit parameters are not allowed with action count.")
		}
	case "filter":
		if !okLimit || !okOffset {
			return fail(http.StatusBadRequest, "KMS.0308", "Invalid parameter: limit and offset must be numeric strings.")
		}
		if !hasLimit {
			limit = 10
		}
		if limit < 1 || limit > kmsapi.MaxPageSize {
			return fail(http.StatusBadRequest, "KMS.0308", "Invalid parameter: limit must be 1 to 1000.")
		}
		if offset < 0 {
			return fail(http.StatusBadRequest, "KMS.0417", "The offset cannot be negative.")
		}
	default:
		return fail(http.StatusBadRequest, "KMS.0308", "Invalid parameter: action must be filter or count.")
	}
	for _, t := range req.Tags {
		if t.Key == "" || len(t.Key) > 36 {
			return fail(http.StatusBadRequest, "KMS.0308", "Invalid parameter: tag key.")
		}
	}
	for _, m := range req.Matches {
		if m.Key != "resource_name" || m.Value == "" || len(m.Value) > 255 {
			return fail(http.StatusBadRequest, "KMS.0308", "Invalid parameter: matches.")
		}
	}
	return req, limit, offset, true
}

func queryInt(r *http.Request, name string, def int) (int, bool) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	return n, err == nil && n >= 0
}

func (s *Server) regions(rw *responder, r *http.Request) {
	limit, ok1 := queryInt(r, "limit", 10)
	offset, ok2 := queryInt(r, "offset", 0)
	if !ok1 || !ok2 || limit < 1 {
		rw.kmsError(http.StatusBadRequest, "KMS.0308", "Invalid parameter: limit or offset.")
		return
	}
	s.mu.Lock()
	if s.regionsCap > 0 {
		limit = min(limit, s.regionsCap)
	}
	s.mu.Unlock()
	n := len(s.crossRegions)
	page := s.crossRegions[min(offset, n):min(offset+limit, n)]
	rw.json(http.StatusOK, struct {
		Regions []string `json:"regions"`
	}{append([]string{}, page...)})
}

type iamDomain struct {
	ID   string `json:"id,omitempty"`
	Name string `json:"name,omitempty"`
}

type iamProject struct {
	ID     string     `json:"id"`
	Name   string     `json:"name"`
	Domain *iamDomain `json:"domain,omitempty"`
}

// iamError is the Keystone shape IAM uses for token errors.
func (rw *responder) iamError(status int, title, msg string) {
	type e struct {
		Code    int    `json:"code"`
		Title   string `json:"title"`
		Message string `json:"message"`
	}
	rw.json(status, struct {
		Error e `json:"error"`
	}{e{status, title, msg}})
}

// scopeRequest is the scope of a token request: a project (by ID or
// name) or a domain.
type scopeRequest struct {
	Project *iamProject `json:"project"`
	Domain  *iamDomain  `json:"domain"`
}

func (s *Server) issueToken(rw *responder, body []byte) {
	var req struct {
		Auth struct {
			Identity struct {
				Methods  []string `json:"methods"`
				Password struct {
					User struct {
						Name     string    `json:"name"`
						Password string    `json:"password"`
						Domain   iamDomain `json:"domain"`
					} `json:"user"`
				} `json:"password"`
			} `json:"identity"`
			Scope scopeRequest `json:"scope"`
		} `json:"auth"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		rw.iamError(http.StatusBadRequest, "Bad Request", "The request body is not valid JSON.")
		return
	}
	id := req.Auth.Identity
	u := id.Password.User
	if !slices.Contains(id.Methods, "password") || u.Name == "" || u.Domain.Name == "" {
		rw.iamError(http.StatusBadRequest, "Bad Request", "Mandatory parameters are not specified.")
		return
	}
	known := false
	for _, cand := range s.users {
		if cand.Domain == u.Domain.Name && cand.Name == u.Name &&
			hmac.Equal([]byte(cand.Password), []byte(u.Password)) {
			known = true
			break
		}
	}
	if !known {
		rw.iamError(http.StatusUnauthorized, "Unauthorized", "The username or password is wrong.")
		return
	}
	p, ok := s.tokenScope(rw, req.Auth.Scope.Project, req.Auth.Scope.Domain, u.Domain.Name)
	if !ok {
		return
	}

	s.grantToken(rw, grant{
		principal: u.Domain.Name + "/" + u.Name,
		userID:    userID(u.Domain.Name, u.Name),
		userName:  u.Name,
		domain:    u.Domain.Name,
		method:    "password",
		project:   p,
	})
}

// grant is an IAM token about to be issued.
type grant struct {
	principal        string // for the rate limit
	userID, userName string
	domain           string // the account's name
	method           string // token.methods
	project          *project
}

// grantToken issues a token as IAM does: 201, the token in X-Subject-Token,
// its expiry, user and scope (the project, else the domain) in the body.
func (s *Server) grantToken(rw *responder, g grant) {
	tok := "MIIFake" + randomHex(48)
	s.mu.Lock()
	now := s.now()
	expires := now.Add(s.tokenTTL)
	t := &token{user: g.principal, expires: expires}
	if g.project != nil {
		t.projectID = g.project.ID
	}
	s.tokens[tok] = t
	s.mu.Unlock()

	type named struct {
		ID     string    `json:"id"`
		Name   string    `json:"name"`
		Domain iamDomain `json:"domain"`
	}
	answer := map[string]any{
		"expires_at": expires.UTC().Format(iamTimeFmt),
		"issued_at":  now.UTC().Format(iamTimeFmt),
		"methods":    []string{g.method},
		"user":       named{g.userID, g.userName, iamDomain{s.domainID, g.domain}},
		"roles":      []map[string]string{{"id": "0", "name": "kms_adm"}},
		"catalog":    []any{},
	}
	if g.project != nil {
		answer["project"] = named{g.project.ID, g.project.IAMName(), iamDomain{s.domainID, g.domain}}
	} else {
		answer["domain"] = iamDomain{s.domainID, g.domain}
	}
	rw.w.Header().Set("X-Subject-Token", tok)
	rw.json(http.StatusCreated, map[string]any{"token": answer})
}

// tokenScope finds the project a token is asked for; nil for a token
// scoped to the user's own domain.
func (s *Server) tokenScope(rw *responder, sc *iamProject, domain *iamDomain, userDomain string) (*project, bool) {
	if sc == nil && domain != nil {
		if domain.Name != userDomain && (domain.ID == "" || domain.ID != s.domainID) {
			rw.iamError(http.StatusUnauthorized, "Unauthorized", "The request you have made requires authentication: not the user's domain.")
			return nil, false
		}
		return nil, true
	}
	if sc == nil || (sc.ID == "" && sc.Name == "") {
		rw.iamError(http.StatusBadRequest, "Bad Request", "A project or domain scope is required.")
		return nil, false
	}
	var found []*project
	for _, p := range s.order {
		if (sc.ID != "" && p.ID == sc.ID) || (sc.ID == "" && p.IAMName() == sc.Name) {
			found = append(found, p)
		}
	}
	if len(found) != 1 {
		rw.iamError(http.StatusUnauthorized, "Unauthorized", "The request you have made requires authentication: unknown or ambiguous project.")
		return nil, false
	}
	return found[0], true
}

func (s *Server) listProjects(rw *responder, r *http.Request) {
	name := r.URL.Query().Get("name")
	out := []iamProjectJSON{}
	for _, p := range s.order {
		if name == "" || p.IAMName() == name {
			out = append(out, s.projectJSON(p.ID, p.IAMName()))
		}
	}
	rw.json(http.StatusOK, map[string]any{
		"projects": out,
		"links":    map[string]any{"self": "/v3/projects", "next": nil, "previous": nil},
	})
}

func (s *Server) metadata(rw *responder, r *http.Request) {
	if r.Method == http.MethodPut {
		ttl, err := strconv.Atoi(r.Header.Get("X-Metadata-Token-Ttl-Seconds"))
		if err != nil || ttl < 1 || ttl > 21600 {
			rw.w.WriteHeader(http.StatusBadRequest)
			return
		}
		tok := randomHex(24)
		s.mu.Lock()
		s.metaTokens[tok] = s.now().Add(time.Duration(ttl) * time.Second)
		s.mu.Unlock()
		rw.w.Header().Set("Content-Type", "text/plain")
		rw.w.Write([]byte(tok))
		return
	}
	s.mu.Lock()
	now := s.now()
	required := len(s.metaTokens) > 0
	exp, valid := s.metaTokens[r.Header.Get("X-Metadata-Token")]
	valid = valid && now.Before(exp)
	s.mu.Unlock()
	if required && !valid {
		rw.w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if s.agency == nil {
		rw.w.WriteHeader(http.StatusNotFound)
		return
	}
	rw.json(http.StatusOK, map[string]any{"credential": map[string]string{
		"access":        s.agency.AK,
		"secret":        s.agency.SK,
		"securitytoken": s.agency.SecurityToken,
		"expires_at":    now.Add(time.Hour).UTC().Format(iamTimeFmt),
	}})
}

// userID makes a stable IAM-looking user ID from the user's names.
func userID(domain, name string) string {
	h := sha256.Sum256([]byte(domain + "/" + name))
	return hex.EncodeToString(h[:16])
}
