// go-regexp-match: Go's own regexp package (the one policy-controller, cosign, CUE and OPA
// use) as the reference of go-regexp/tests/against_go.rs and host/tests/rego_go_regex.rs.
//
// Reads JSON lines {"pattern": string, "texts": [string]} from the file named by its argument
// and writes, for each, one JSON line: {"error": string} when regexp.Compile refuses the
// pattern, else {"matches": [bool]} (regexp's MatchString on each text).
//
// Built by `make test-tools` with Debian's golang-go (standard library only) into
// target/test-tools/bin.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
)

type request struct {
	Pattern string   `json:"pattern"`
	Texts   []string `json:"texts"`
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: go-regexp-match CASES.jsonl")
		os.Exit(2)
	}
	file, err := os.Open(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer file.Close()
	lines := bufio.NewScanner(file)
	lines.Buffer(make([]byte, 1<<20), 1<<24)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	encoder := json.NewEncoder(out)
	for lines.Scan() {
		var case_ request
		if err := json.Unmarshal(lines.Bytes(), &case_); err != nil {
			fmt.Fprintf(os.Stderr, "bad case %q: %v\n", lines.Text(), err)
			os.Exit(1)
		}
		var reply any
		if compiled, err := regexp.Compile(case_.Pattern); err != nil {
			reply = map[string]string{"error": err.Error()}
		} else {
			matches := make([]bool, len(case_.Texts))
			for i, text := range case_.Texts {
				matches[i] = compiled.MatchString(text)
			}
			reply = map[string][]bool{"matches": matches}
		}
		if err := encoder.Encode(reply); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	if err := lines.Err(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
