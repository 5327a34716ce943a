/* ddc-verdict: the comparison of nix/ddc.nix (diverse double-compiling at stage0).
 *
 *   ddc-verdict [--strict] --target ARCH --host ARCH OUT MANIFEST SKIPPED
 *
 * MANIFEST has one line per compared file, "INDEX STEP-ID TOOL" (TOOL "-" for an intermediate
 * file). For each INDEX, OUT/sha256/INDEX.target and OUT/sha256/INDEX.rebuilt are what the
 * chain's own sha256sum printed ("HASH  PATH") for the target chain's file and for the one the
 * host chain rebuilt. The files themselves are compared byte for byte (the hashes are reported,
 * the bytes decide). SKIPPED is a JSON list written by Nix (the commands not run again) and is
 * copied into the verdict as it is. Writes OUT/ddc.json (format in docs/ddc.md) and prints each
 * file that differs. Exit status: 0, or with --strict 1 when any file differs; 2 on bad input.
 *
 * Written in the C subset M2-Planet compiles (the host chain's M2-Mesoplanet builds it): locals
 * at the top of a function, && and || do not short-circuit, no ternary operator.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include <sys/types.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#define CHUNK 65536

int read_size;

void fail(char* what, char* name)
{
	fputs("ddc-verdict: ", stderr);
	fputs(what, stderr);
	fputs(name, stderr);
	fputs("\n", stderr);
	exit(2);
}

/* The whole file; its length in read_size. */
char* read_all(char* path)
{
	int fd;
	int cap;
	int n;
	int r;
	char* buf;
	char* bigger;
	fd = open(path, 0, 0);
	if(fd < 0) fail("cannot open ", path);
	cap = CHUNK;
	n = 0;
	buf = malloc(cap + 1);
	while(1)
	{
		if(n == cap)
		{
			bigger = malloc(cap * 2 + 1);
			memcpy(bigger, buf, n);
			free(buf);
			buf = bigger;
			cap = cap * 2;
		}
		r = read(fd, buf + n, cap - n);
		if(r < 0) fail("cannot read ", path);
		if(r == 0) break;
		n = n + r;
	}
	close(fd);
	buf[n] = 0;
	read_size = n;
	return buf;
}

/* sha256sum's line "HASH  PATH\n": HASH is 64 hex digits. */
char* sum_hash;
char* sum_path;

void parse_sum(char* file)
{
	char* text;
	int i;
	int end;
	text = read_all(file);
	if(read_size < 67) fail("not a sha256sum line in ", file);
	i = 0;
	while(i < 64)
	{
		if(!(((text[i] >= '0') && (text[i] <= '9')) || ((text[i] >= 'a') && (text[i] <= 'f'))))
		{
			fail("not a sha256 digest in ", file);
		}
		i = i + 1;
	}
	if((text[64] != ' ') || (text[65] != ' ')) fail("not a sha256sum line in ", file);
	text[64] = 0;
	sum_hash = text;
	end = 66;
	while((text[end] != 0) && (text[end] != '\n')) end = end + 1;
	text[end] = 0;
	sum_path = text + 66;
}

/* A JSON string: the values here are store paths, step ids and tool names; anything that would
 * need more than \" and \\ is refused. */
void json_string(FILE* out, char* s)
{
	int i;
	fputc('"', out);
	i = 0;
	while(s[i] != 0)
	{
		if((s[i] < 32) && (s[i] >= 0)) fail("control character in ", s);
		if((s[i] == '"') || (s[i] == '\\')) fputc('\\', out);
		fputc(s[i], out);
		i = i + 1;
	}
	fputc('"', out);
}

/* A non-negative number in decimal. */
char* decimal(int n)
{
	char* s;
	int i;
	s = calloc(16, 1);
	i = 14;
	s[i] = '0' + (n % 10);
	n = n / 10;
	while(n > 0)
	{
		i = i - 1;
		s[i] = '0' + (n % 10);
		n = n / 10;
	}
	return s + i;
}

char* join(char* a, char* b, char* c)
{
	char* r;
	r = calloc(strlen(a) + strlen(b) + strlen(c) + 1, 1);
	strcpy(r, a);
	strcat(r, b);
	strcat(r, c);
	return r;
}

/* The next blank- or newline-terminated word of the manifest, from *pos on. */
int pos;
char* word(char* text, char* file)
{
	int start;
	while(text[pos] == ' ') pos = pos + 1;
	start = pos;
	while((text[pos] != ' ') && (text[pos] != '\n') && (text[pos] != 0)) pos = pos + 1;
	if(start == pos) fail("short line in ", file);
	if(text[pos] != 0)
	{
		text[pos] = 0;
		pos = pos + 1;
	}
	return text + start;
}

int main(int argc, char** argv)
{
	int strict;
	int i;
	char* target;
	char* host;
	char* outdir;
	char* manifest_file;
	char* skipped_file;
	char* manifest;
	char* skipped;
	char* index;
	char* id;
	char* tool;
	char* t_hash;
	char* t_path;
	char* r_hash;
	char* r_path;
	char* t_bytes;
	char* r_bytes;
	int t_size;
	int r_size;
	int same;
	int files;
	int differing;
	FILE* out;
	FILE* list;

	strict = 0;
	target = NULL;
	host = NULL;
	i = 1;
	while(i < argc)
	{
		if(argv[i][0] != '-') break;
		if(0 == strcmp(argv[i], "--strict"))
		{
			strict = 1;
			i = i + 1;
		}
		else if((0 == strcmp(argv[i], "--target")) && (i + 1 < argc))
		{
			target = argv[i + 1];
			i = i + 2;
		}
		else if((0 == strcmp(argv[i], "--host")) && (i + 1 < argc))
		{
			host = argv[i + 1];
			i = i + 2;
		}
		else fail("unknown option ", argv[i]);
	}
	if((argc - i != 3) || (target == NULL) || (host == NULL))
	{
		fail("usage: ddc-verdict [--strict] --target ARCH --host ARCH OUT MANIFEST SKIPPED", "");
	}
	outdir = argv[i];
	manifest_file = argv[i + 1];
	skipped_file = argv[i + 2];
	manifest = read_all(manifest_file);
	skipped = read_all(skipped_file);

	out = fopen(join(outdir, "/ddc.json", ""), "w");
	if(out == NULL) fail("cannot write ", join(outdir, "/ddc.json", ""));
	/* the differing ids, collected while the files are written, listed at the end */
	list = fopen(join(outdir, "/differing.txt", ""), "w");
	if(list == NULL) fail("cannot write ", join(outdir, "/differing.txt", ""));

	fputs("{\n \"format\": 1,\n \"check\": \"ddc-stage0\",\n \"target\": ", out);
	json_string(out, target);
	fputs(",\n \"host\": ", out);
	json_string(out, host);
	fputs(",\n \"files\": [", out);

	files = 0;
	differing = 0;
	pos = 0;
	while(manifest[pos] != 0)
	{
		index = word(manifest, manifest_file);
		id = word(manifest, manifest_file);
		tool = word(manifest, manifest_file);

		parse_sum(join(outdir, "/sha256/", join(index, ".target", "")));
		t_hash = sum_hash;
		t_path = sum_path;
		parse_sum(join(outdir, "/sha256/", join(index, ".rebuilt", "")));
		r_hash = sum_hash;
		r_path = sum_path;

		t_bytes = read_all(t_path);
		t_size = read_size;
		r_bytes = read_all(r_path);
		r_size = read_size;
		same = 0;
		if(t_size == r_size)
		{
			if(0 == memcmp(t_bytes, r_bytes, t_size)) same = 1;
		}
		/* equal bytes with different digests (or the reverse) would be a broken sha256sum */
		if(same != (0 == strcmp(t_hash, r_hash))) fail("sha256sum and the bytes disagree on ", id);
		free(t_bytes);
		free(r_bytes);

		if(files != 0) fputs(",", out);
		fputs("\n  {\"step\": ", out);
		json_string(out, id);
		fputs(", \"tool\": ", out);
		if(0 == strcmp(tool, "-")) fputs("null", out);
		else json_string(out, tool);
		fputs(",\n   \"target\": {\"sha256\": ", out);
		json_string(out, t_hash);
		fputs(", \"size\": ", out);
		fputs(decimal(t_size), out);
		fputs(", \"path\": ", out);
		json_string(out, t_path);
		fputs("},\n   \"rebuilt\": {\"sha256\": ", out);
		json_string(out, r_hash);
		fputs(", \"size\": ", out);
		fputs(decimal(r_size), out);
		fputs(", \"path\": ", out);
		json_string(out, r_path);
		fputs("},\n   \"identical\": ", out);
		if(same) fputs("true}", out);
		else
		{
			fputs("false}", out);
			if(differing != 0) fputs(",", list);
			json_string(list, id);
			differing = differing + 1;
			fputs("ddc-verdict: differs: ", stderr);
			fputs(id, stderr);
			fputs(" (", stderr);
			fputs(t_hash, stderr);
			fputs(" from the target chain, ", stderr);
			fputs(r_hash, stderr);
			fputs(" rebuilt)\n", stderr);
		}
		files = files + 1;
	}
	fclose(list);
	if(files == 0) fail("nothing to compare in ", manifest_file);

	fputs("\n ],\n \"compared\": ", out);
	fputs(decimal(files), out);
	fputs(",\n \"differing\": [", out);
	fputs(read_all(join(outdir, "/differing.txt", "")), out);
	fputs("],\n \"identical\": ", out);
	if(differing == 0) fputs("true", out);
	else fputs("false", out);
	fputs(",\n \"skipped\": ", out);
	fputs(skipped, out);
	fputs("\n}\n", out);
	fclose(out);
	remove(join(outdir, "/differing.txt", ""));

	fputs("ddc-verdict: ", stdout);
	fputs(decimal(files), stdout);
	fputs(" files compared, ", stdout);
	fputs(decimal(differing), stdout);
	fputs(" differ\n", stdout);
	if(strict && (differing != 0)) return 1;
	return 0;
}
