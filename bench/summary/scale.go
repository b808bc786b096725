package main

// scaleRows are the figures of BenchmarkScale and BenchmarkDiscoveryRefresh.
func scaleRows(add func(row)) {
	for _, c := range []struct{ name, what, goal string }{
		{"a_200projects_1cred", "200 projects x 2.5k keys, 1 credential at 50/s", "<= 1.05"},
		{"b_20creds_x_10projects", "20 credentials x 10 projects x 2.5k keys, 5/s each", "<= 1.1"},
	} {
		name := "BenchmarkScale/" + c.name
		limit := 1.05
		if c.goal == "<= 1.1" {
			limit = 1.1
		}
		add(row{figure: "Scale " + c.what + ": median scrape", name: name, unit: "median-ms", scale: 1e-3, format: "%.2f s", goal: "reference"})
		add(row{figure: "Scale " + c.what + ": rate-limit bound", name: name, unit: "bound-ms", scale: 1e-3, format: "%.2f s", goal: "reference"})
		add(row{figure: "Scale " + c.what + ": median / bound", name: name, unit: "ratio", format: "%.3f", goal: c.goal, pass: atMost(limit)})
		add(row{figure: "Scale " + c.what + ": API calls per scrape", name: name, unit: "calls/scrape", format: "%.0f", goal: "= 1000", pass: func(v float64) bool { return v == 1000 }})
		add(row{figure: "Scale " + c.what + ": CPU per target per scrape", name: name, unit: "cpu-ms/target", format: "%.1f ms", goal: "reference"})
		add(row{figure: "Scale " + c.what + ": peak RSS of the process", name: name, unit: "rss-peak-MiB", format: "%.0f MiB", goal: "reference"})
	}
	for _, c := range []string{"unchanged", "all-new"} {
		name := "BenchmarkDiscoveryRefresh/" + c
		add(row{figure: "Discovery refresh of 1,000 projects, " + c, name: name, unit: "ns/op", scale: 1e-6, format: "%.1f ms", goal: "reference"})
		add(row{figure: "Discovery refresh of 1,000 projects, " + c + ", allocated", name: name, unit: "B/op", scale: 1.0 / (1 << 20), format: "%.2f MiB", goal: "reference"})
	}
}
