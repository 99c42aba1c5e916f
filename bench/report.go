package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
)

// figure is one measured number, compared with its baseline.
type figure struct {
	Name     string  `json:"figure"`
	Value    float64 `json:"value"`
	Unit     string  `json:"unit"`
	Baseline float64 `json:"baseline"`
	Ratio    float64 `json:"ratio"`

	// For the table only.
	baselineText string // what the baseline is
	target       string
	pass         *bool
}

type report struct {
	mu      sync.Mutex
	figures []figure
}

// add records a figure and prints its JSON line on stdout. The ratio is
// value/baseline (0 without a baseline).
func (r *report) add(f figure) {
	if f.Baseline != 0 {
		f.Ratio = round(f.Value/f.Baseline, 3)
	}
	f.Value, f.Baseline = round(f.Value, 3), round(f.Baseline, 3)
	r.mu.Lock()
	r.figures = append(r.figures, f)
	r.mu.Unlock()
	line, _ := json.Marshal(f)
	fmt.Fprintf(os.Stdout, "%s\n", line)
}

// check sets the pass mark of a figure against its target.
func check(target string, ok bool) (string, *bool) { return target, &ok }

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

func num(v float64) string {
	switch {
	case v == 0:
		return "0"
	case math.Abs(v) >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case math.Abs(v) >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 3, 64)
}

// table writes the figures as a human table.
func (r *report) table(w io.Writer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.figures) == 0 {
		fmt.Fprintln(w, "no figures measured")
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tvalue\tunit\tbaseline\tratio\ttarget\t")
	fmt.Fprintln(tw, "------\t-----\t----\t--------\t-----\t------\t")
	for _, f := range r.figures {
		base, ratio := "-", "-"
		if f.Baseline != 0 {
			base = num(f.Baseline)
			if f.baselineText != "" {
				base += " (" + f.baselineText + ")"
			}
			ratio = num(f.Ratio)
		}
		target := f.target
		if f.pass != nil {
			if *f.pass {
				target += " ok"
			} else {
				target += " MISSED"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\n", f.Name, num(f.Value), f.Unit, base, ratio, strings.TrimSpace(target))
	}
	_ = tw.Flush()
}
