// porcupine-check: Porcupine's verdict on a quorate JSONL register history, for
// `make bench-checker` only (it is built outside the repository by checker/bench/prepare.sh).
//
// Usage: porcupine-check FILE TIMEOUT_SECONDS
//
// The history is read as quorate writes it (docs/HISTORY.md): an invoke is paired with the
// next completion of the same process; `fail` ops did not happen and are left out; an `info`
// read constrains nothing and is left out; an `info` write returns at +inf, so it may take
// effect at any time after its invoke (last of all, where it changes nothing, if no read saw
// it). Timestamps are line numbers, so real-time order is the file's line order as in
// quorate; Porcupine's closed intervals never touch because every line has its own number.
// The model is a register per key (Porcupine partitions by key), read/write only.
//
// Prints one line: `{"result": "ok"|"illegal"|"unknown", "ms": N, "peak_mb": N, "ops": N}`.
// "unknown" is Porcupine's time-out.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

type event struct {
	Index   int64           `json:"index"`
	Process json.RawMessage `json:"process"`
	Type    string          `json:"type"`
	F       string          `json:"f"`
	Key     string          `json:"key"`
	Value   json.RawMessage `json:"value"`
}

type input struct {
	key   string
	write bool
	value string
}

type pending struct {
	call  int64
	f     string
	key   string
	value string
}

// compact JSON text of a value, so equal values compare equal as strings ("null" for none).
func compact(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "null"
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return string(raw)
	}
	return b.String()
}

func read(path string) ([]porcupine.Operation, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	open := map[string]pending{}
	clients := map[string]int{}
	var ops []porcupine.Operation
	line := int64(0)
	for sc.Scan() {
		line++
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("%s line %d: %v", path, line, err)
		}
		p := string(e.Process)
		if strings.HasPrefix(p, "\"") {
			continue // nemesis and harness lines
		}
		if _, ok := clients[p]; !ok {
			clients[p] = len(clients)
		}
		if e.F != "read" && e.F != "write" {
			return nil, fmt.Errorf("%s line %d: op %q; expected read or write", path, line, e.F)
		}
		if e.Type == "invoke" {
			open[p] = pending{call: line, f: e.F, key: e.Key, value: compact(e.Value)}
			continue
		}
		inv, ok := open[p]
		if !ok {
			return nil, fmt.Errorf("%s line %d: a completion with no invoke", path, line)
		}
		delete(open, p)
		write := inv.f == "write"
		switch {
		case e.Type == "fail":
			continue
		case e.Type == "info" && !write:
			continue
		case e.Type == "info":
			ops = append(ops, porcupine.Operation{ClientId: clients[p],
				Input: input{inv.key, true, inv.value}, Call: inv.call, Return: math.MaxInt64})
		case e.Type == "ok":
			out := inv.value
			if !write {
				out = compact(e.Value)
			}
			ops = append(ops, porcupine.Operation{ClientId: clients[p],
				Input: input{inv.key, write, inv.value}, Call: inv.call, Output: out, Return: line})
		default:
			return nil, fmt.Errorf("%s line %d: type %q", path, line, e.Type)
		}
	}
	// Invokes never completed are info: writes stay (returning at +inf), reads go.
	for p, inv := range open {
		if inv.f == "write" {
			ops = append(ops, porcupine.Operation{ClientId: clients[p],
				Input: input{inv.key, true, inv.value}, Call: inv.call, Return: math.MaxInt64})
		}
	}
	return ops, sc.Err()
}

var register = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Input.(input).key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		var out [][]porcupine.Operation
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() interface{} { return "null" },
	Step: func(state, in, out interface{}) (bool, interface{}) {
		i := in.(input)
		if i.write {
			return true, i.value
		}
		return out.(string) == state.(string), state
	},
	Equal: func(a, b interface{}) bool { return a.(string) == b.(string) },
}

func peakMB() float64 {
	text, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return math.NaN()
	}
	for _, l := range strings.Split(string(text), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(l[6:]), "kB")), 64)
			if err == nil {
				return kb * 1024 / 1e6
			}
		}
	}
	return math.NaN()
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: porcupine-check FILE TIMEOUT_SECONDS")
		os.Exit(3)
	}
	secs, err := strconv.ParseFloat(os.Args[2], 64)
	if err != nil || secs <= 0 {
		fmt.Fprintf(os.Stderr, "%q is not a time-out; expected seconds such as 60\n", os.Args[2])
		os.Exit(3)
	}
	start := time.Now()
	ops, err := read(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	res := porcupine.CheckOperationsTimeout(register, ops, time.Duration(secs*float64(time.Second)))
	word := map[porcupine.CheckResult]string{porcupine.Ok: "ok", porcupine.Illegal: "illegal", porcupine.Unknown: "unknown"}[res]
	fmt.Printf("{\"result\": %q, \"ms\": %.1f, \"peak_mb\": %.1f, \"ops\": %d}\n",
		word, float64(time.Since(start).Microseconds())/1e3, peakMB(), len(ops))
}
