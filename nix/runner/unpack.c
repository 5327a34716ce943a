/* lb-unpack: makes a pinned package's layer from the package alone (early cutoff, nix/cutoff.nix).
 *
 * live-bootstrap installs a package with helpers.sh's src_apply: `bzip2 -dc
 * /external/repo/<pkg>_<rev>.tar.bz2 | tar -C / -xpf -`, keeping the tarball in /external/repo.
 * The layer a later step overlays is that, done into an empty directory: every member extracted
 * with its mode (`-p`), the tarball itself at /external/repo/<file>, and no deletions. The
 * decompression is stage0-posix's unbz2 (a derivation of its own); this tool reads the plain tar.
 * It is built by M2-Mesoplanet from stage0-posix alone, so a layer's store path depends on the
 * pin and on this file, never on live-bootstrap's steps. src_apply's special cases (bash, bzip2,
 * tar moved aside or removed before extracting over themselves) only decide which binary runs
 * the extraction in a live root; into an empty directory there is nothing to move aside.
 *
 * Written in the C subset M2-Planet compiles (see ns-run.c: no short-circuit && ||, no ternary,
 * locals at the top); the tests build it with the host compiler (`gcc -include host.h`).
 *
 * Modes:
 *   lb-unpack copy SRC DST             copy a file (the fixed-output package derivation)
 *   lb-unpack layer TAR PKG NAME OUT   OUT/tree = TAR extracted + PKG at /external/repo/NAME,
 *                                      OUT/deletions empty
 *   lb-unpack environ PREV NAME OUT    the environment after the pinned build of NAME
 *   lb-unpack check STEP LAYER ENV OUT the layer (and ENV) against the step's own output
 *
 * Tar members: GNU and ustar headers (GNU long names `L`/`K`, the ustar prefix), regular files,
 * directories, symbolic links. Anything else (hard links: src_pkg packs with
 * --hard-dereference; devices, fifos, pax headers) stops with the member's name: a package that
 * has one gets no layer rather than a wrong one.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>

#define UP_O_RDONLY 0
#define UP_O_WRONLY 1
#define UP_O_CREAT 64
#define UP_O_TRUNC 512
#define UP_O_DIRECTORY 65536
#define UP_S_IFMT 61440
#define UP_S_IFDIR 16384
#define UP_S_IFREG 32768
#define UP_S_IFLNK 40960
#define UP_BUFSZ 65536

/* Every wrapper returns the kernel's -errno on failure, on both compilers. */
#ifdef __M2__
int up_lstat64(char* path, char* buf)
{
	asm("lea_ebx,[esp+DWORD] %8"
	    "mov_ebx,[ebx]"
	    "lea_ecx,[esp+DWORD] %4"
	    "mov_ecx,[ecx]"
	    "mov_eax, %196"
	    "int !0x80");
}

int up_getdents64(int fd, char* buf, int size)
{
	asm("lea_ebx,[esp+DWORD] %12"
	    "mov_ebx,[ebx]"
	    "lea_ecx,[esp+DWORD] %8"
	    "mov_ecx,[ecx]"
	    "lea_edx,[esp+DWORD] %4"
	    "mov_edx,[edx]"
	    "mov_eax, %220"
	    "int !0x80");
}

int up_readlink(char* path, char* buf, int size)
{
	asm("lea_ebx,[esp+DWORD] %12"
	    "mov_ebx,[ebx]"
	    "lea_ecx,[esp+DWORD] %8"
	    "mov_ecx,[ecx]"
	    "lea_edx,[esp+DWORD] %4"
	    "mov_edx,[edx]"
	    "mov_eax, %85"
	    "int !0x80");
}

int up_open(char* path, int flags, int mode) { return _open(path, flags, mode); }
int up_mkdir(char* path, int mode) { return mkdir(path, mode); }
int up_chmod(char* path, int mode) { return chmod(path, mode); }
int up_unlink(char* path) { return unlink(path); }
int up_symlink(char* target, char* path) { return symlink(target, path); }
int up_read(int fd, char* buf, int n) { return read(fd, buf, n); }
int up_write(int fd, char* buf, int n) { return write(fd, buf, n); }
int up_close(int fd) { return close(fd); }
#else
int up_ret(long r)
{
	if (r < 0) return -errno;
	return r;
}
int up_lstat64(char* path, char* buf) { return up_ret(lstat(path, (struct stat*) buf)); }
int up_getdents64(int fd, char* buf, int size) { return up_ret(syscall(SYS_getdents64, fd, buf, size)); }
int up_readlink(char* path, char* buf, int size) { return up_ret(readlink(path, buf, size)); }
int up_open(char* path, int flags, int mode) { return up_ret(open(path, flags, mode)); }
int up_mkdir(char* path, int mode) { return up_ret(mkdir(path, mode)); }
int up_chmod(char* path, int mode) { return up_ret(chmod(path, mode)); }
int up_unlink(char* path) { return up_ret(unlink(path)); }
int up_symlink(char* target, char* path) { return up_ret(symlink(target, path)); }
int up_read(int fd, char* buf, int n) { return up_ret(read(fd, buf, n)); }
int up_write(int fd, char* buf, int n) { return up_ret(write(fd, buf, n)); }
int up_close(int fd) { return up_ret(close(fd)); }
#endif

void up_out2(char* s)
{
	write(2, s, strlen(s));
}

char* up_itoa(int x)
{
	char* r = calloc(16, 1);
	int i = 14;
	int neg = 0;
	if (x < 0) {
		neg = 1;
		x = -x;
	}
	if (x == 0) {
		r[i] = '0';
		i = i - 1;
	}
	while (x > 0) {
		r[i] = '0' + (x % 10);
		x = x / 10;
		i = i - 1;
	}
	if (neg) {
		r[i] = '-';
		i = i - 1;
	}
	return r + i + 1;
}

/* lb-unpack: WHAT [PATH][: errno N] and exit 1 */
void die(char* what, char* path, int err)
{
	up_out2("lb-unpack: ");
	up_out2(what);
	if (path != NULL) {
		up_out2(" ");
		up_out2(path);
	}
	if (err != 0) {
		up_out2(": errno ");
		if (err < 0) err = -err;
		up_out2(up_itoa(err));
	}
	up_out2("\n");
	exit(1);
}

char* cat3(char* a, char* b, char* c)
{
	char* r = calloc(strlen(a) + strlen(b) + strlen(c) + 1, 1);
	strcpy(r, a);
	strcat(r, b);
	strcat(r, c);
	return r;
}

void write_all(int fd, char* buf, int len, char* path)
{
	int r;
	while (len > 0) {
		r = up_write(fd, buf, len);
		if (r < 0) die("cannot write", path, r);
		if (r == 0) die("cannot write (no progress)", path, 0);
		buf = buf + r;
		len = len - r;
	}
}

/* mkdir -p, new directories 0755 (tar's umask-022 default for implied parents) */
void mkdirs(char* path)
{
	char* p = calloc(strlen(path) + 1, 1);
	int i = 1;
	int r;
	strcpy(p, path);
	while (p[i] != 0) {
		if (p[i] == '/') {
			p[i] = 0;
			r = up_mkdir(p, 493);
			if (r < 0) {
				if (r != -17) die("cannot create directory", p, r);
			}
			p[i] = '/';
		}
		i = i + 1;
	}
	r = up_mkdir(p, 493);
	if (r < 0) {
		if (r != -17) die("cannot create directory", p, r);
	}
	free(p);
}

void mkparents(char* path)
{
	char* p = calloc(strlen(path) + 1, 1);
	int i = strlen(path);
	strcpy(p, path);
	while (i > 0) {
		i = i - 1;
		if (p[i] == '/') {
			p[i] = 0;
			if (i > 0) mkdirs(p);
			free(p);
			return;
		}
	}
	free(p);
}

void copy_file(char* src, char* dst)
{
	char* buf = calloc(UP_BUFSZ, 1);
	int in = up_open(src, UP_O_RDONLY, 0);
	int out;
	int r;
	if (in < 0) die("cannot open", src, in);
	out = up_open(dst, UP_O_WRONLY | UP_O_CREAT | UP_O_TRUNC, 420);
	if (out < 0) die("cannot create", dst, out);
	while (1) {
		r = up_read(in, buf, UP_BUFSZ);
		if (r < 0) die("cannot read", src, r);
		if (r == 0) break;
		write_all(out, buf, r, dst);
	}
	up_close(in);
	r = up_close(out);
	if (r < 0) die("cannot write", dst, r);
	free(buf);
}

/* ------------------------------------------------------------------------------------------
 * The tar stream
 * ------------------------------------------------------------------------------------------ */

int tar_fd;
char* tar_path;
char* tar_buf;

/* exactly n bytes, or stop naming the archive (a truncated package is not a package) */
void read_exact(char* buf, int n)
{
	int got = 0;
	int r;
	while (got < n) {
		r = up_read(tar_fd, buf + got, n - got);
		if (r < 0) die("cannot read", tar_path, r);
		if (r == 0) die("truncated archive", tar_path, 0);
		got = got + r;
	}
}

int padded(int size)
{
	return ((size + 511) / 512) * 512;
}

void skip(int n)
{
	int chunk;
	while (n > 0) {
		chunk = n;
		if (chunk > UP_BUFSZ) chunk = UP_BUFSZ;
		read_exact(tar_buf, chunk);
		n = n - chunk;
	}
}

/* a numeric header field: octal digits, leading spaces/NULs; the base-256 form (files of 8 GiB
 * and more) is refused rather than misread */
int octal(char* field, int len, char* name)
{
	int i = 0;
	int v = 0;
	int c;
	if ((0xff & field[0]) > 127) die("base-256 number in the header of", name, 0);
	while (i < len) {
		c = 0xff & field[i];
		if (c == ' ') {
			if (v != 0) break;
		} else if (c == 0) {
			if (v != 0) break;
		} else if (c < '0') {
			die("bad number in the header of", name, 0);
		} else if (c > '7') {
			die("bad number in the header of", name, 0);
		} else {
			if (v > 268435455) die("number too large in the header of", name, 0);
			v = v * 8 + (c - '0');
		}
		i = i + 1;
	}
	return v;
}

char* field_string(char* field, int len)
{
	char* r = calloc(len + 1, 1);
	memcpy(r, field, len);
	return r;
}

/* a member name as tar -C / would place it, relative: leading "/" and "./" dropped, trailing "/"
 * dropped; ".." components refused (the package could otherwise write outside the layer) */
char* clean_name(char* raw)
{
	char* s = raw;
	int n;
	int i;
	int start;
	while (1) {
		if (s[0] == '/') {
			s = s + 1;
		} else if (s[0] == '.') {
			if (s[1] == '/') s = s + 2;
			else break;
		} else break;
	}
	n = strlen(s);
	while (n > 0) {
		if (s[n - 1] != '/') break;
		n = n - 1;
	}
	s = field_string(s, n);
	if (strcmp(s, ".") == 0) s[0] = 0;
	start = 0;
	i = 0;
	while (i <= n) {
		if ((s[i] == '/') | (s[i] == 0)) {
			if (i - start == 2) {
				if ((s[start] == '.') & (s[start + 1] == '.')) die("member name with '..':", raw, 0);
			}
			start = i + 1;
		}
		i = i + 1;
	}
	return s;
}

char* stat_buf;
int path_mode(char* path);

/* A member below a symbolic link of the package (usr/lib64 -> lib, then usr/lib64/x) would be
 * written wherever the link points: in the live root tar -C / follows it inside the root, here it
 * would leave the layer. src_pkg's tar never stores such a member (it does not descend into
 * links), so one is refused rather than followed. */
void no_link_on_the_way(char* root, char* name)
{
	char* p = cat3(root, "/", name);
	int n = strlen(root) + 1;
	int m;
	while (p[n] != 0) {
		if (p[n] == '/') {
			p[n] = 0;
			m = path_mode(p);
			if (m >= 0) {
				if ((m & UP_S_IFMT) == UP_S_IFLNK) die("member below a symbolic link of the package:", name, 0);
			}
			p[n] = '/';
		}
		n = n + 1;
	}
	free(p);
}

/* directories get their modes at the end (children first), as tar does, so a 0555 directory
 * can still receive its members */
struct dirmode {
	char* path;
	int mode;
	struct dirmode* next;
};

struct dirmode* dirmodes;

void extract(char* tar, char* root)
{
	char* hdr = calloc(512, 1);
	char* longname = NULL;
	char* longlink = NULL;
	char* name;
	char* link;
	char* path;
	char* prefix;
	int size;
	int mode;
	int type;
	int fd;
	int r;
	int chunk;
	int left;
	int zero;
	int i;
	struct dirmode* d;
	tar_path = tar;
	tar_buf = calloc(UP_BUFSZ, 1);
	stat_buf = calloc(256, 1);
	tar_fd = up_open(tar, UP_O_RDONLY, 0);
	if (tar_fd < 0) die("cannot open", tar, tar_fd);
	while (1) {
		read_exact(hdr, 512);
		zero = 1;
		i = 0;
		while (i < 512) {
			if (hdr[i] != 0) zero = 0;
			i = i + 1;
		}
		if (zero) break;

		name = field_string(hdr, 100);
		if (longname != NULL) {
			name = longname;
			longname = NULL;
		} else if (memcmp(hdr + 257, "ustar", 6) == 0) {
			/* POSIX ustar ("ustar\0"): the prefix field continues the name (GNU's "ustar  "
			 * has no prefix there) */
			if (hdr[345] != 0) {
				prefix = field_string(hdr + 345, 155);
				name = cat3(prefix, "/", name);
			}
		}
		link = field_string(hdr + 157, 100);
		if (longlink != NULL) {
			link = longlink;
			longlink = NULL;
		}
		size = octal(hdr + 124, 12, name);
		mode = octal(hdr + 100, 8, name);
		type = 0xff & hdr[156];

		if ((type == 'L') | (type == 'K')) {
			/* GNU long name / long link target of the next member */
			if (size > 65536) die("long name too long before", name, 0);
			prefix = calloc(padded(size) + 1, 1);
			read_exact(prefix, padded(size));
			prefix[size] = 0;
			if (type == 'L') longname = prefix;
			else longlink = prefix;
			continue;
		}

		name = clean_name(name);
		if (name[0] == 0) {
			/* "./": tar -xp applies it to / itself; the layer's root belongs to the store */
			skip(padded(size));
			continue;
		}
		no_link_on_the_way(root, name);
		path = cat3(root, "/", name);

		if ((type == '0') | (type == 0) | (type == '7')) {
			mkparents(path);
			up_unlink(path);
			fd = up_open(path, UP_O_WRONLY | UP_O_CREAT | UP_O_TRUNC, 384);
			if (fd < 0) die("cannot create", path, fd);
			left = size;
			while (left > 0) {
				chunk = left;
				if (chunk > UP_BUFSZ) chunk = UP_BUFSZ;
				read_exact(tar_buf, chunk);
				write_all(fd, tar_buf, chunk, path);
				left = left - chunk;
			}
			r = up_close(fd);
			if (r < 0) die("cannot write", path, r);
			skip(padded(size) - size);
			/* -p: the member's permission bits. Setuid/setgid bits are dropped: the store
			 * cannot keep them (Nix resets every file to 0444/0555) and Nix's seccomp filter
			 * refuses them. */
			r = up_chmod(path, mode & 511);
			if (r < 0) die("cannot chmod", path, r);
		} else if (type == '5') {
			mkdirs(path);
			d = calloc(1, sizeof(struct dirmode));
			d->path = path;
			d->mode = mode & 511;
			d->next = dirmodes;
			dirmodes = d;
			skip(padded(size));
		} else if (type == '2') {
			mkparents(path);
			up_unlink(path);
			r = up_symlink(link, path);
			if (r < 0) die("cannot create symbolic link", path, r);
			skip(padded(size));
		} else if (type == '1') {
			die("hard link member (src_pkg packs with --hard-dereference; not supported):", name, 0);
		} else {
			up_out2("lb-unpack: member type '");
			write(2, hdr + 156, 1);
			up_out2("' is not supported (only files, directories, symbolic links):");
			die("", name, 0);
		}
	}
	up_close(tar_fd);
	/* the list is newest first: children before their parents */
	d = dirmodes;
	while (d != NULL) {
		r = up_chmod(d->path, d->mode);
		if (r < 0) die("cannot chmod", d->path, r);
		d = d->next;
	}
}

/* ------------------------------------------------------------------------------------------
 * The environment after a pinned build: helpers.sh's build() assigns pkg=<name>, and pkg is
 * exported since the kaem era (kaem's `pkg=...` lines set environment variables); nothing else
 * of a build is expected to reach the environment (`check` compares with what the step left).
 * ------------------------------------------------------------------------------------------ */

char* read_whole(char* path, int* len)
{
	int fd = up_open(path, UP_O_RDONLY, 0);
	int cap = 4096;
	int n = 0;
	int r;
	char* buf;
	char* bigger;
	if (fd < 0) die("cannot open", path, fd);
	buf = calloc(cap + 1, 1);
	while (1) {
		if (n == cap) {
			bigger = calloc(cap * 2 + 1, 1);
			memcpy(bigger, buf, n);
			free(buf);
			buf = bigger;
			cap = cap * 2;
		}
		r = up_read(fd, buf + n, cap - n);
		if (r < 0) die("cannot read", path, r);
		if (r == 0) break;
		n = n + r;
	}
	up_close(fd);
	len[0] = n;
	return buf;
}

void write_env(char* prev, char* name, char* out)
{
	int len;
	char* env = read_whole(prev, &len);
	int fd = up_open(out, UP_O_WRONLY | UP_O_CREAT | UP_O_TRUNC, 420);
	int i = 0;
	int start;
	char* entry;
	if (fd < 0) die("cannot create", out, fd);
	while (i < len) {
		start = i;
		while (i < len) {
			if (env[i] == 0) break;
			i = i + 1;
		}
		entry = env + start;
		if (strncmp(entry, "pkg=", 4) == 0) {
			write_all(fd, "pkg=", 4, out);
			write_all(fd, name, strlen(name) + 1, out);
		} else {
			write_all(fd, entry, i - start + 1, out);
		}
		i = i + 1;
	}
	i = up_close(fd);
	if (i < 0) die("cannot write", out, i);
}

/* ------------------------------------------------------------------------------------------
 * check: the layer against the step's own output, as the store keeps them (file type, the
 * executable bit, bytes, link targets); the step deleted nothing; its environment is the one
 * the cutoff hands on. Every difference is printed, then the check fails.
 * ------------------------------------------------------------------------------------------ */

int differences;

void differ(char* what, char* rel)
{
	differences = differences + 1;
	if (differences <= 200) {
		up_out2("lb-unpack: ");
		up_out2(what);
		up_out2(" ");
		up_out2(rel);
		up_out2("\n");
	}
}

int path_mode(char* path)
{
	int r = up_lstat64(path, stat_buf);
#ifdef __M2__
	int* p;
	if (r < 0) return r;
	p = stat_buf + 16;
	return p[0];
#else
	struct stat* st;
	if (r < 0) return r;
	st = (struct stat*) stat_buf;
	return st->st_mode;
#endif
}

struct name {
	char* s;
	struct name* next;
};

struct name* insert_sorted(struct name* head, struct name* e)
{
	struct name* cur;
	if (head == NULL) {
		e->next = NULL;
		return e;
	}
	if (strcmp(e->s, head->s) < 0) {
		e->next = head;
		return e;
	}
	cur = head;
	while (cur->next != NULL) {
		if (strcmp(e->s, cur->next->s) < 0) break;
		cur = cur->next;
	}
	e->next = cur->next;
	cur->next = e;
	return head;
}

struct name* list_dir(char* path)
{
	int fd = up_open(path, UP_O_RDONLY | UP_O_DIRECTORY, 0);
	char* buf;
	int n;
	int pos;
	int reclen;
	char* nm;
	struct name* head = NULL;
	struct name* e;
	if (fd < 0) die("cannot open directory", path, fd);
	buf = calloc(UP_BUFSZ, 1);
	while (1) {
		n = up_getdents64(fd, buf, UP_BUFSZ);
		if (n < 0) die("cannot read directory", path, n);
		if (n == 0) break;
		pos = 0;
		while (pos < n) {
			reclen = (buf[pos + 16] & 255) | ((buf[pos + 17] & 255) << 8);
			nm = buf + pos + 19;
			if (strcmp(nm, ".") != 0) {
				if (strcmp(nm, "..") != 0) {
					e = calloc(1, sizeof(struct name));
					e->s = calloc(strlen(nm) + 1, 1);
					strcpy(e->s, nm);
					head = insert_sorted(head, e);
				}
			}
			pos = pos + reclen;
		}
	}
	up_close(fd);
	free(buf);
	return head;
}

int same_bytes(char* a, char* b)
{
	char* x = calloc(UP_BUFSZ, 1);
	char* y = calloc(UP_BUFSZ, 1);
	int fa = up_open(a, UP_O_RDONLY, 0);
	int fb = up_open(b, UP_O_RDONLY, 0);
	int ra;
	int rb;
	int r;
	int same = 1;
	if (fa < 0) die("cannot open", a, fa);
	if (fb < 0) die("cannot open", b, fb);
	while (same) {
		ra = up_read(fa, x, UP_BUFSZ);
		if (ra < 0) die("cannot read", a, ra);
		/* as many bytes of b (a short read is not a difference) */
		rb = 0;
		while (rb < ra) {
			r = up_read(fb, y + rb, ra - rb);
			if (r < 0) die("cannot read", b, r);
			if (r == 0) break;
			rb = rb + r;
		}
		if (rb != ra) same = 0;
		else if (memcmp(x, y, ra) != 0) same = 0;
		if (ra == 0) break;
	}
	if (same) {
		/* a is at its end: b must be too */
		if (up_read(fb, y, 1) != 0) same = 0;
	}
	up_close(fa);
	up_close(fb);
	free(x);
	free(y);
	return same;
}

char* link_target(char* path)
{
	char* buf = calloc(4097, 1);
	int r = up_readlink(path, buf, 4096);
	if (r < 0) die("cannot read link", path, r);
	buf[r] = 0;
	return buf;
}

void compare_tree(char* step, char* layer, char* rel);

void compare_entry(char* step, char* layer, char* rel)
{
	int ms = path_mode(step);
	int ml = path_mode(layer);
	if (ms < 0) die("cannot stat", step, ms);
	if (ml < 0) die("cannot stat", layer, ml);
	if ((ms & UP_S_IFMT) != (ml & UP_S_IFMT)) {
		differ("different file type:", rel);
	} else if ((ms & UP_S_IFMT) == UP_S_IFDIR) {
		compare_tree(step, layer, rel);
	} else if ((ms & UP_S_IFMT) == UP_S_IFLNK) {
		if (strcmp(link_target(step), link_target(layer)) != 0) differ("different link target:", rel);
	} else if ((ms & UP_S_IFMT) == UP_S_IFREG) {
		if ((ms & 64) != (ml & 64)) differ("different executable bit:", rel);
		else if (same_bytes(step, layer) == 0) differ("different contents:", rel);
	} else {
		differ("not a file, directory or link:", rel);
	}
}

void compare_tree(char* step, char* layer, char* rel)
{
	struct name* a = list_dir(step);
	struct name* b = list_dir(layer);
	int c;
	while ((a != NULL) | (b != NULL)) {
		if (a == NULL) c = 1;
		else if (b == NULL) c = -1;
		else c = strcmp(a->s, b->s);
		if (c < 0) {
			differ("only in the step's output:", cat3(rel, "/", a->s));
			a = a->next;
		} else if (c > 0) {
			differ("only in the layer:", cat3(rel, "/", b->s));
			b = b->next;
		} else {
			compare_entry(cat3(step, "/", a->s), cat3(layer, "/", b->s), cat3(rel, "/", a->s));
			a = a->next;
			b = b->next;
		}
	}
}

/* NUL-separated entries of `big` missing from `small`, each reported */
void env_missing(char* big, int blen, char* small, int slen, char* what)
{
	int i = 0;
	int j;
	int start;
	int k;
	int found;
	while (i < blen) {
		start = i;
		while (i < blen) {
			if (big[i] == 0) break;
			i = i + 1;
		}
		found = 0;
		j = 0;
		while (j < slen) {
			k = j;
			while (k < slen) {
				if (small[k] == 0) break;
				k = k + 1;
			}
			if (k - j == i - start) {
				if (memcmp(small + j, big + start, k - j) == 0) found = 1;
			}
			j = k + 1;
		}
		if (found == 0) differ(what, field_string(big + start, i - start));
		i = i + 1;
	}
}

int check(char* step, char* layer, char* environ, char* out)
{
	int len;
	int elen;
	char* dels = read_whole(cat3(step, "/", "deletions"), &len);
	char* senv;
	char* cenv;
	int fd;
	stat_buf = calloc(256, 1);
	if (len != 0) differ("the step deleted from earlier layers (its deletions record is not empty):", dels);
	compare_tree(cat3(step, "/", "tree"), cat3(layer, "/", "tree"), "");
	senv = read_whole(cat3(step, "/", "state/environ"), &len);
	cenv = read_whole(environ, &elen);
	env_missing(senv, len, cenv, elen, "the step's environment has an entry the cutoff does not hand on:");
	env_missing(cenv, elen, senv, len, "the cutoff hands on an entry the step's environment does not have:");
	if (differences != 0) {
		up_out2("lb-unpack: the layer made from the package is NOT what the step produced: ");
		up_out2(up_itoa(differences));
		up_out2(" difference(s)\n");
		return 1;
	}
	fd = up_open(out, UP_O_WRONLY | UP_O_CREAT | UP_O_TRUNC, 420);
	if (fd < 0) die("cannot create", out, fd);
	write_all(fd, "layer == step output\n", 21, out);
	up_close(fd);
	up_out2("lb-unpack: the layer is the step's output, file for file\n");
	return 0;
}

int main(int argc, char** argv)
{
	char* out;
	char* repo;
	int fd;
	if (argc < 2) {
		up_out2("usage: lb-unpack copy SRC DST | layer TAR PKG NAME OUT | environ PREV NAME OUT | check STEP LAYER ENVIRON OUT\n");
		return 2;
	}
	if (strcmp(argv[1], "copy") == 0) {
		if (argc != 4) die("usage: lb-unpack copy SRC DST", NULL, 0);
		copy_file(argv[2], argv[3]);
		return 0;
	}
	if (strcmp(argv[1], "layer") == 0) {
		if (argc != 6) die("usage: lb-unpack layer TAR PKG NAME OUT", NULL, 0);
		if (strchr(argv[4], '/') != NULL) die("package file name with '/':", argv[4], 0);
		out = argv[5];
		mkdirs(cat3(out, "/", "tree"));
		extract(argv[2], cat3(out, "/", "tree"));
		repo = cat3(out, "/", "tree/external/repo");
		mkdirs(repo);
		copy_file(argv[3], cat3(repo, "/", argv[4]));
		/* nothing of earlier layers is deleted by installing a package */
		fd = up_open(cat3(out, "/", "deletions"), UP_O_WRONLY | UP_O_CREAT | UP_O_TRUNC, 420);
		if (fd < 0) die("cannot create", out, fd);
		up_close(fd);
		return 0;
	}
	if (strcmp(argv[1], "environ") == 0) {
		if (argc != 5) die("usage: lb-unpack environ PREV NAME OUT", NULL, 0);
		write_env(argv[2], argv[3], argv[4]);
		return 0;
	}
	if (strcmp(argv[1], "check") == 0) {
		if (argc != 6) die("usage: lb-unpack check STEP LAYER ENVIRON OUT", NULL, 0);
		return check(argv[2], argv[3], argv[4], argv[5]);
	}
	die("unknown mode", argv[1], 0);
	return 2;
}
