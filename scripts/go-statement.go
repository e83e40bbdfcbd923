// go-statement: what sigstore policy-controller hands an attestation's CUE/Rego policy as the
// statement: cosign's policy.AttestationToPayloadJSON (pkg/policy/attestation.go, cosign v2.2.3,
// which policy-controller's go.mod pins), which decodes the in-toto statement (the DSSE payload)
// with json.Unmarshal into in-toto-golang's in_toto.Statement, then, by the predicate type AS
// WRITTEN in the policy, again into a typed statement, and writes that with json.Marshal. The
// reference of testkit's go_statements (the tests of
// cluster_image_policy::policy::statement::go_view).
//
// Reads JSON lines {"statement": string, "predicateType": string}, the text of an in-toto
// statement and the predicate type as the policy writes it (`custom`, `link`, `slsaprovenance`,
// `spdx`, `spdxjson`, `cyclonedx`, `vuln`, or anything else: a URI), from the file named by its
// argument (stdin without one) and writes, for each, one JSON line: {"view": <what
// AttestationToPayloadJSON returns>}, or {"error": string} when a decoding (or the encoding)
// fails. Not mirrored: the comparison of the statement's predicateType with the URI the written
// type stands for (the caller sends only statements of the type written; a statement of another
// type is skipped by policy-controller, not read).
//
// The types below are written from the sources' field lists: in-toto-golang v0.9.0 (the version
// policy-controller's go.mod resolves; in_toto/attestations.go, in_toto/model.go's Link,
// in_toto/slsa_provenance/v0.2/provenance.go and common/common.go) and cosign v2.2.3
// (pkg/cosign/attestation/attestation.go): the same Go field types and the same json tags.
// None of them has JSON methods of its own; the only ones involved are time.Time's, which
// Debian's Go 1.19 (that builds this) has otherwise than the Go >= 1.22 policy-controller is
// built with: Time carries them as Go >= 1.20 has them (as scripts/go-image-config.go does; see
// there for the details).
//
// Built by `make test-tools` with Debian's golang-go (standard library only) into
// target/test-tools/bin.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// StatementHeader as in_toto.StatementHeader (embedded in every statement below, so its fields
// are read and written as the statement's own).
type StatementHeader struct {
	Type          string    `json:"_type"`
	PredicateType string    `json:"predicateType"`
	Subject       []Subject `json:"subject"`
}

// Subject as in_toto.Subject; its digest is common.DigestSet, a map[string]string.
type Subject struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

// Statement as in_toto.Statement; in_toto.SPDXStatement and in_toto.CycloneDXStatement have
// the same fields.
type Statement struct {
	StatementHeader
	Predicate interface{} `json:"predicate"`
}

// LinkStatement as in_toto.LinkStatement.
type LinkStatement struct {
	StatementHeader
	Predicate Link `json:"predicate"`
}

// Link as in_toto.Link in v0.9.0: materials and products are map[string]interface{} (v0.10.0
// makes them map[string]HashObj, HashObj = map[string]string).
type Link struct {
	Type        string                 `json:"_type"`
	Name        string                 `json:"name"`
	Materials   map[string]interface{} `json:"materials"`
	Products    map[string]interface{} `json:"products"`
	ByProducts  map[string]interface{} `json:"byproducts"`
	Command     []string               `json:"command"`
	Environment map[string]interface{} `json:"environment"`
}

// ProvenanceStatementSLSA02 as in_toto.ProvenanceStatementSLSA02.
type ProvenanceStatementSLSA02 struct {
	StatementHeader
	Predicate ProvenancePredicate `json:"predicate"`
}

// ProvenancePredicate as slsa02.ProvenancePredicate. (`omitempty` on a struct does nothing:
// encoding/json never omits one, so `invocation` is always written.)
type ProvenancePredicate struct {
	Builder     ProvenanceBuilder    `json:"builder"`
	BuildType   string               `json:"buildType"`
	Invocation  ProvenanceInvocation `json:"invocation,omitempty"`
	BuildConfig interface{}          `json:"buildConfig,omitempty"`
	Metadata    *ProvenanceMetadata  `json:"metadata,omitempty"`
	Materials   []ProvenanceMaterial `json:"materials,omitempty"`
}

// ProvenanceInvocation as slsa02.ProvenanceInvocation.
type ProvenanceInvocation struct {
	ConfigSource ConfigSource `json:"configSource,omitempty"`
	Parameters   interface{}  `json:"parameters,omitempty"`
	Environment  interface{}  `json:"environment,omitempty"`
}

// ConfigSource as slsa02.ConfigSource.
type ConfigSource struct {
	URI        string            `json:"uri,omitempty"`
	Digest     map[string]string `json:"digest,omitempty"`
	EntryPoint string            `json:"entryPoint,omitempty"`
}

// ProvenanceMetadata as slsa02.ProvenanceMetadata (the times are *time.Time there).
type ProvenanceMetadata struct {
	BuildInvocationID string             `json:"buildInvocationID,omitempty"`
	BuildStartedOn    *Time              `json:"buildStartedOn,omitempty"`
	BuildFinishedOn   *Time              `json:"buildFinishedOn,omitempty"`
	Completeness      ProvenanceComplete `json:"completeness"`
	Reproducible      bool               `json:"reproducible"`
}

// ProvenanceComplete as slsa02.ProvenanceComplete.
type ProvenanceComplete struct {
	Parameters  bool `json:"parameters"`
	Environment bool `json:"environment"`
	Materials   bool `json:"materials"`
}

// ProvenanceBuilder as common.ProvenanceBuilder.
type ProvenanceBuilder struct {
	ID string `json:"id"`
}

// ProvenanceMaterial as common.ProvenanceMaterial.
type ProvenanceMaterial struct {
	URI    string            `json:"uri,omitempty"`
	Digest map[string]string `json:"digest,omitempty"`
}

// CosignVulnStatement as cosign's attestation.CosignVulnStatement.
type CosignVulnStatement struct {
	StatementHeader
	Predicate CosignVulnPredicate `json:"predicate"`
}

// CosignVulnPredicate as attestation.CosignVulnPredicate.
type CosignVulnPredicate struct {
	Invocation Invocation `json:"invocation"`
	Scanner    Scanner    `json:"scanner"`
	Metadata   Metadata   `json:"metadata"`
}

// Invocation as attestation.Invocation.
type Invocation struct {
	Parameters interface{} `json:"parameters"`
	URI        string      `json:"uri"`
	EventID    string      `json:"event_id"`
	BuilderID  string      `json:"builder.id"`
}

// DB as attestation.DB.
type DB struct {
	URI     string `json:"uri"`
	Version string `json:"version"`
}

// Scanner as attestation.Scanner.
type Scanner struct {
	URI     string      `json:"uri"`
	Version string      `json:"version"`
	DB      DB          `json:"db"`
	Result  interface{} `json:"result"`
}

// Metadata as attestation.Metadata (time.Time values, not pointers: written even when absent,
// as the zero time).
type Metadata struct {
	ScanStartedOn  Time `json:"scanStartedOn"`
	ScanFinishedOn Time `json:"scanFinishedOn"`
}

type request struct {
	Statement     *string `json:"statement"`
	PredicateType *string `json:"predicateType"`
}

type reply struct {
	View  json.RawMessage `json:"view,omitempty"`
	Error *string         `json:"error,omitempty"`
}

// view is what AttestationToPayloadJSON returns for the statement `text` and the predicate type
// `written` in the policy: its switch, case for case (the short names are cosign's
// options.PredicateTypeMap keys; those of the map the switch has no case for, as
// `cyclonedxxml`, and every URI, take the default: the generic Statement).
func view(text string, written string) (json.RawMessage, error) {
	if written == "" {
		return nil, errors.New("missing predicate type")
	}
	payload := []byte(text)
	var statement Statement
	if err := json.Unmarshal(payload, &statement); err != nil {
		return nil, fmt.Errorf("unmarshal in-toto statement: %w", err)
	}
	// The second decoding, into the typed statement, and its name in cosign's error messages;
	// none for `custom` and the default, which write the Statement already decoded.
	var typed interface{}
	var name string
	switch written {
	case "custom":
	case "link":
		typed, name = &LinkStatement{}, "LinkStatement"
	case "slsaprovenance":
		typed, name = &ProvenanceStatementSLSA02{}, "ProvenanceStatementSLSA02"
	case "spdx", "spdxjson":
		// in_toto.SPDXStatement: the fields of Statement.
		typed, name = &Statement{}, "SPDXStatement"
	case "cyclonedx":
		// in_toto.CycloneDXStatement: the fields of Statement.
		typed, name = &Statement{}, "CycloneDXStatement"
	case "vuln":
		typed, name = &CosignVulnStatement{}, "CosignVulnStatement"
	default:
	}
	if typed == nil {
		typed = &statement
	} else if err := json.Unmarshal(payload, typed); err != nil {
		return nil, fmt.Errorf("unmarshaling %s: %w", name, err)
	}
	out, err := json.Marshal(typed)
	if err != nil {
		return nil, fmt.Errorf("json.Marshal: %w", err)
	}
	return out, nil
}

func main() {
	var input io.Reader = os.Stdin
	switch len(os.Args) {
	case 1:
	case 2:
		file, err := os.Open(os.Args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer file.Close()
		input = file
	default:
		fmt.Fprintln(os.Stderr, "usage: go-statement [CASES.jsonl]")
		os.Exit(2)
	}
	lines := bufio.NewScanner(input)
	lines.Buffer(make([]byte, 1<<20), 1<<26)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	encoder := json.NewEncoder(out)
	for lines.Scan() {
		var case_ request
		if err := json.Unmarshal(lines.Bytes(), &case_); err != nil || case_.Statement == nil || case_.PredicateType == nil {
			fmt.Fprintf(os.Stderr, "bad case %q: %v\n", lines.Text(), err)
			out.Flush()
			os.Exit(1)
		}
		var answer reply
		if written, err := view(*case_.Statement, *case_.PredicateType); err != nil {
			message := err.Error()
			answer.Error = &message
		} else {
			answer.View = written
		}
		if err := encoder.Encode(answer); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	if err := lines.Err(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
