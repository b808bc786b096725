package kmsfake

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/kms-exporter/kms_exporter/kmsapi"
)

// DemoAccessKey is the credential of the Demo scenario.
var DemoAccessKey = AccessKey{AK: "DEMOACCESSKEY0000000", SK: "demo-secret-key-not-a-real-secret-000000"}

// DemoUser may log in to every Demo project with a password.
var DemoUser = User{Domain: "demo-account", Name: "demo-user", Password: "demo-password"}

// ExampleAccessKey is the credential Generate puts in a scenario when none is given.
var ExampleAccessKey = AccessKey{AK: "EXAMPLEAK00000000000", SK: "example-secret-key-for-tests-only-00000"}

// ExampleUser is the IAM user Generate puts in every scenario.
var ExampleUser = User{Domain: "example-account", Name: "exporter", Password: "example-password"}

// ExampleIdentityProvider is the OIDC identity provider Generate puts in
// every scenario: ID tokens for it come from Server.IDToken.
var ExampleIdentityProvider = IdentityProvider{ID: "example-cce-idp", ClientID: "kms-exporter"}

// ExampleAgency is the metadata credential Generate puts in every scenario.
var ExampleAgency = AccessKey{AK: "EXAMPLEAGENCYAK00000", SK: "example-agency-secret-key-00000000000000", SecurityToken: "example-security-token-gQpjbi1ub3J0aC00"}

// DefaultRegions is the region list Generate cycles over by default.
var DefaultRegions = []string{
	"cn-north-4", "cn-east-3", "cn-south-1", "ap-southeast-1", "ap-southeast-3",
	"eu-west-101", "af-south-1", "la-south-2", "cn-north-9", "ap-southeast-2",
}

// Service default master keys, created by a service on first use.
var defaultAliases = []string{"obs/default", "evs/default", "rds/default", "sfs/default", "ims/default", "dew/default"}

var (
	envs     = []string{"prod", "prod", "staging", "dev"}
	teams    = []string{"payments", "platform", "data", "identity", "search", "mobile", "security"}
	apps     = []string{"orders", "billing", "ledger", "session", "backup", "analytics", "catalog", "auth", "reports", "media"}
	purposes = []string{"db", "s3", "disk", "secrets", "tokens", "archive", "logs"}
)

type gen struct{ r *rand.Rand }

func (g gen) hex(n int) string {
	const digits = "0123456789abcdef"
	b := make([]byte, n)
	for i := range b {
		b[i] = digits[g.r.IntN(16)]
	}
	return string(b)
}

func (g gen) uuid() string {
	h := g.hex(32)
	return h[:8] + "-" + h[8:12] + "-4" + h[13:16] + "-a" + h[17:20] + "-" + h[20:]
}

func (g gen) pick(s []string) string { return s[g.r.IntN(len(s))] }

// customerKey builds a customer key with the tags a real team would add and
// a long tail of rare ones.
func (g gen) customerKey(domainID string, now time.Time, n int, state kmsapi.KeyState) kmsapi.Key {
	alias := fmt.Sprintf("%s-%s-%04d", g.pick(apps), g.pick(purposes), n)
	k := kmsapi.Key{
		ID:           g.uuid(),
		Alias:        alias,
		Description:  "key for " + alias,
		DomainID:     domainID,
		ResourceName: alias,
		State:        state,
		KeyType:      1,
		Created:      now.Add(-time.Duration(1+g.r.IntN(1500*24)) * time.Hour).Truncate(time.Millisecond),
	}
	if g.r.IntN(10) == 0 {
		k.KeyType = 2 // asymmetric
	}
	if g.r.IntN(10) < 9 {
		k.Tags = append(k.Tags, kmsapi.Tag{Key: "env", Value: g.pick(envs)})
	}
	if g.r.IntN(10) < 8 {
		k.Tags = append(k.Tags, kmsapi.Tag{Key: "team", Value: g.pick(teams)})
	}
	if g.r.IntN(3) == 0 {
		k.Tags = append(k.Tags, kmsapi.Tag{Key: "cost-center", Value: fmt.Sprintf("cc-%04d", g.r.IntN(200))})
	}
	if g.r.IntN(20) == 0 {
		k.Tags = append(k.Tags, kmsapi.Tag{Key: "compliance", Value: g.pick([]string{"pci-dss", "gdpr", "iso27001"})})
	}
	if g.r.IntN(50) == 0 {
		k.Tags = append(k.Tags, kmsapi.Tag{Key: fmt.Sprintf("owner-%d", g.r.IntN(1000)), Value: "yes"})
	}
	if state == kmsapi.StatePendingDeletion {
		k.ScheduledDeletion = now.Add(time.Duration(1+g.r.IntN(30*24)) * time.Hour).Truncate(time.Millisecond)
	}
	return k
}

func (g gen) randomState() kmsapi.KeyState {
	switch n := g.r.IntN(100); {
	case n < 85:
		return kmsapi.StateEnabled
	case n < 92:
		return kmsapi.StateDisabled
	case n < 96:
		return kmsapi.StatePendingDeletion
	case n < 98:
		return kmsapi.StatePendingActivation
	}
	return kmsapi.StatePendingImport
}

func defaultKey(g gen, domainID, alias string, now time.Time) kmsapi.Key {
	k := kmsapi.Key{
		ID:           g.uuid(),
		Alias:        alias,
		Description:  "Default master key for " + alias[:len(alias)-len("/default")],
		DomainID:     domainID,
		ResourceName: alias,
		State:        kmsapi.StateEnabled,
		Default:      true,
		KeyType:      1,
		Created:      now.Add(-time.Duration(1000+g.r.IntN(1000)) * 24 * time.Hour).Truncate(time.Millisecond),
	}
	setDefaultKeyAttributes(&k)
	return k
}

// finish sets quotas and the instance count from the keys: service default
// keys do not count against the CMK quota nor in user-instances.
func finish(p *Project, cmkLimit, grantsUsed int64) {
	var custom int64
	for _, k := range p.Keys {
		if !k.Default {
			custom++
		}
	}
	p.Instances = custom
	p.Quotas = []kmsapi.Quota{
		{Resource: "CMK", Used: custom, Limit: cmkLimit},
		{Resource: "grant_per_CMK", Used: grantsUsed, Limit: 100},
	}
}

// Generate builds a realistic scenario of any size, deterministic for a
// Seed: projects cycle over Regions, each with a few service default keys
// and customer keys mostly enabled with some in every other state, tagged
// env and team plus a long tail. The CMK quota is at least the key count.
// The scenario also holds ExampleUser, ExampleAgency and
// ExampleIdentityProvider.
func Generate(o GenerateOptions) Scenario {
	if o.Projects <= 0 {
		o.Projects = 1
	}
	if len(o.Regions) == 0 {
		o.Regions = DefaultRegions
	}
	if o.Now.IsZero() {
		o.Now = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	}
	if o.AccessKey == (AccessKey{}) {
		o.AccessKey = ExampleAccessKey
	}
	g := gen{rand.New(rand.NewPCG(uint64(o.Seed), 0x6b6d735f66616b65))}
	domainID := g.hex(32)
	agency := ExampleAgency
	sc := Scenario{
		AccessKeys: []AccessKey{o.AccessKey},
		Users:      []User{ExampleUser},
		Agency:     &agency,
		// An identity provider as a CCE cluster with workload identity has.
		IdentityProviders: []IdentityProvider{ExampleIdentityProvider},
		CrossRegions:      append([]string(nil), o.Regions[:min(3, len(o.Regions))]...),
	}
	for i := range o.Projects {
		p := Project{ID: g.hex(32), Region: o.Regions[i%len(o.Regions)]}
		n := o.KeysPerProject
		defaults := min(n/10, len(defaultAliases))
		if n >= 3 {
			defaults = max(defaults, 1)
		}
		p.Keys = make([]kmsapi.Key, 0, n)
		for j := range defaults {
			p.Keys = append(p.Keys, defaultKey(g, domainID, defaultAliases[j], o.Now))
		}
		// Every non-enabled state at least once when there is room.
		forced := []kmsapi.KeyState{kmsapi.StateDisabled, kmsapi.StatePendingDeletion, kmsapi.StatePendingActivation, kmsapi.StatePendingImport}
		for j := defaults; j < n; j++ {
			st := g.randomState()
			if c := j - defaults; n-defaults >= 10 && c < len(forced) {
				st = forced[c]
			}
			k := g.customerKey(domainID, o.Now, j, st)
			setAttributes(&k, j, o.Now)
			p.Keys = append(p.Keys, k)
		}
		limit := int64(n) + int64(n)/4 + 20
		limit -= limit % 10
		finish(&p, max(limit, int64(n)), int64(g.r.IntN(40)))
		sc.Projects = append(sc.Projects, p)
	}
	return sc
}

// demoPlan is one project of the demo account.
type demoPlan struct {
	id, region string
	name       string // IAM project name of a sub-project; "" for the region project
	defaults   []string
	customers  int
	cmkLimit   int64
	grants     int64
	// special states by customer index
	states map[int]kmsapi.KeyState
	// scheduled deletion by customer index, from now
	deletions map[int]time.Duration
}

const day = 24 * time.Hour

// demoPlans are the projects of Demo: three region projects, then three
// sub-projects, small and quiet, that discovery finds.
var demoPlans = []demoPlan{
	{
		id: "0c5b7e3f9a2d4e61b8f0a7c3d2e1f405", region: "cn-north-4",
		defaults: []string{"obs/default", "evs/default", "rds/default"}, customers: 46, cmkLimit: 50, grants: 37,
		states: map[int]kmsapi.KeyState{
			3: kmsapi.StateDisabled, 11: kmsapi.StateDisabled, 19: kmsapi.StateDisabled, 27: kmsapi.StateDisabled,
			5: kmsapi.StatePendingDeletion, 14: kmsapi.StatePendingDeletion, 33: kmsapi.StatePendingDeletion,
			8: kmsapi.StatePendingActivation, 40: kmsapi.StatePendingImport,
		},
		deletions: map[int]time.Duration{5: 2*day + 5*time.Hour, 14: 5*day + 11*time.Hour, 33: 20 * day},
	},
	{
		id: "7f1e2d3c4b5a49687766554433221100", region: "ap-southeast-1",
		defaults: []string{"obs/default", "evs/default"}, customers: 14, cmkLimit: 50, grants: 6,
		states: map[int]kmsapi.KeyState{
			2: kmsapi.StateDisabled, 9: kmsapi.StatePendingDeletion, 12: kmsapi.StatePendingActivation,
		},
		deletions: map[int]time.Duration{9: 36 * time.Hour},
	},
	{
		id: "a4e9b2c7d1f0483e9c6b5a2d8e7f1c39", region: "eu-west-101",
		defaults: []string{"evs/default"}, customers: 5, cmkLimit: 20, grants: 0,
		states: map[int]kmsapi.KeyState{4: kmsapi.StateDisabled},
	},
	{id: "5e1d7c9b3a2f48e6a0b4c8d2e6f1a3b7", region: "cn-north-4", name: "cn-north-4_payments", customers: 12, cmkLimit: 50, grants: 4},
	{id: "9a8b7c6d5e4f43218f0e1d2c3b4a5968", region: "cn-north-4", name: "cn-north-4_analytics", customers: 8, cmkLimit: 50, grants: 1},
	{id: "c3d4e5f60718492a8b9c0d1e2f3a4b5c", region: "ap-southeast-1", name: "ap-southeast-1_shop", customers: 6, cmkLimit: 20, grants: 0},
}

// Demo is the account kms_exporter --demo shows: three region projects;
// cn-north-4 busy and above 90% of its CMK quota with keys in every state,
// two of them to be deleted within a week and one later; ap-southeast-1
// moderate with one key to be deleted within two days; eu-west-101 small.
// Then three small sub-projects (cn-north-4_payments, cn-north-4_analytics,
// ap-southeast-1_shop) and MOS, a project without KMS. Content is fixed;
// only dates move with now.
func Demo(now time.Time) Scenario {
	g := gen{rand.New(rand.NewPCG(20250601, 0x64656d6f))}
	domainID := "d3a0c1e8b5f74a2c9e6d1b4f8a7c2e50"
	now = now.Truncate(time.Millisecond)
	sc := Scenario{
		AccessKeys:   []AccessKey{DemoAccessKey},
		Users:        []User{DemoUser},
		CrossRegions: []string{"cn-north-4", "cn-east-3", "ap-southeast-1", "eu-west-101"},
		// Projects without KMS, which discovery skips.
		OtherProjects: []IAMProject{{ID: "e7f8091a2b3c4d5e6f708192a3b4c5d6", Name: "MOS"}},
	}
	rareTags := []kmsapi.Tag{{Key: "compliance", Value: "pci-dss"}, {Key: "owner", Value: "alice"}, {Key: "cost-center", Value: "cc-4711"}, {Key: "legacy", Value: "true"}}
	for pi, pl := range demoPlans {
		p := Project{ID: pl.id, Region: pl.region, Name: pl.name}
		for _, a := range pl.defaults {
			k := defaultKey(g, domainID, a, now)
			p.Keys = append(p.Keys, k)
		}
		for i := range pl.customers {
			st, ok := pl.states[i]
			if !ok {
				st = kmsapi.StateEnabled
			}
			k := g.customerKey(domainID, now, i+1, st)
			// Shifted per project, so that projects differ.
			setAttributes(&k, i+1+9*pi, now)
			// Fixed tags rather than random ones, so the dashboards look the
			// same on every run.
			k.Tags = []kmsapi.Tag{
				{Key: "env", Value: []string{"prod", "prod", "staging", "dev"}[(i+pi)%4]},
				{Key: "team", Value: teams[(i*3+pi)%5]},
			}
			if i%9 == 4 {
				k.Tags = append(k.Tags, rareTags[(i/9+pi)%len(rareTags)])
			}
			if i%13 == 7 {
				k.Tags = k.Tags[1:] // a key someone forgot to tag with env
			}
			if d, ok := pl.deletions[i]; ok {
				k.ScheduledDeletion = now.Add(d)
			}
			p.Keys = append(p.Keys, k)
		}
		finish(&p, pl.cmkLimit, pl.grants)
		sc.Projects = append(sc.Projects, p)
	}
	return sc
}
