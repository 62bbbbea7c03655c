package main

import (
	"slices"
)

// workloadSubjects returns, for the workloads that do not run against every
// selected peer, the function that says what they run against: given the
// selected peers, it returns the peers to run (some of them, or peers of the
// workload's own, such as a JavaScript client in Node), or an error saying
// why the workload cannot run here. It returns nil for the workloads that
// run against every selected peer.
func workloadSubjects(key string) func(selected []peer) ([]peer, error) {
	switch key {
	case "fanout":
		return fanoutSubjects
	case "js":
		return jsSubjects
	}
	return nil
}

// pickSubjects returns the peers that each workload of wls runs against,
// keyed by workload; the peers of the workloads' own that are not among the
// selected ones, in order, for the report to list; and, for each workload
// that cannot run, why.
func pickSubjects(wls []workload, selected []peer) (by map[string][]peer, extra []peer, skipped []peerInfo) {
	by = make(map[string][]peer, len(wls))
	names := peerNames(selected)
	for _, w := range wls {
		pick := workloadSubjects(w.key)
		if pick == nil {
			by[w.key] = selected
			continue
		}
		ps, err := pick(selected)
		if err != nil {
			skipped = append(skipped, peerInfo{Name: "workload " + w.key, About: err.Error()})
			continue
		}
		by[w.key] = ps
		for _, p := range ps {
			if !slices.Contains(names, p.name()) {
				names = append(names, p.name())
				extra = append(extra, p)
			}
		}
	}
	return by, extra, skipped
}

// rotate returns ps started k places further along, so that each repetition
// runs the peers of a workload in another order.
func rotate(ps []peer, k int) []peer {
	if len(ps) == 0 {
		return nil
	}
	k %= len(ps)
	return append(slices.Clone(ps[k:]), ps[:k]...)
}
