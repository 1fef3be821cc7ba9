package main

import (
	"io"
	"strings"
	"testing"
)

func TestParseFlagsOnly(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		want    string // the scenarios selected, in run order
		wantErr string
	}{
		{args: nil, want: "direct,master,master-wrk,master-half,nginx,nginx-wrk,batch,master-50"},
		{args: []string{"--only", "2w,3w"}, want: "master-wrk,nginx-wrk"},
		{args: []string{"--only", "2,5"}, want: "master,master-50"},
		{args: []string{"--only", "master-50", "--half-rate", "2000"}, want: "master-50"},
		{args: []string{"--only", "5"}, wantErr: "add master, or give --half-rate"},
		{args: []string{"--only", "2x"}, wantErr: "unknown scenario"},
		{args: []string{"--many-slaves", "2"}, wantErr: "--many-slaves"},
		{args: []string{"--slices", "0"}, wantErr: "--slices"},
		{args: []string{"--master-procs", "-1"}, wantErr: "--master-procs"},
	} {
		cfg, err := parseFlags(tc.args, io.Discard)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: err %v, want one containing %q", tc.args, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		var got []string
		for _, k := range scenarioKeys {
			if cfg.only[k] {
				got = append(got, k)
			}
		}
		if strings.Join(got, ",") != tc.want {
			t.Errorf("%q: selected %s, want %s", tc.args, strings.Join(got, ","), tc.want)
		}
	}
}
