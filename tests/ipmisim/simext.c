/*
 * simext.c - ipmi_sim "loadlib" module for the hostagent test suite.
 *
 * Fills three gaps of stock ipmi_sim (openipmi 2.0.33) that matter to a
 * real client (ipmitool, pyghmi):
 *
 *  1. DCMI (netfn 0x2c, group extension 0xdc) is not implemented.  We answer
 *     Get DCMI Capabilities (0x01, parameter 1 only) and Get Power Reading
 *     (0x02).  The wattage is read from <statedir>/power_watts on every
 *     request, so the test fixture changes it at run time with a file write
 *     (no console round trip) and it survives a simulator restart.
 *
 *  2. Get/Set System Boot Options (chassis netfn 0x00, cmds 0x08/0x09): stock
 *     only forwards the device to the chassis_control program and always
 *     reports parameter 5 with the "valid" bit clear and "next boot only",
 *     so `ipmitool chassis bootparam get 5` and pyghmi's get_bootdev() can
 *     never see what was set.  We store parameters 0-5 verbatim and append
 *     every parameter-5 write to <statedir>/chassis.log (the same log the
 *     chassis_control script writes, one JSON object per line, O_APPEND).
 *
 *  3. Read FRU Data (storage netfn 0x0a, cmd 0x11) answers any count that
 *     does not fit the response buffer with 0xC8 ("request data field length
 *     limit exceeded").  pyghmi asks for 224 bytes and only backs off on
 *     0xC9/0xCA, so it could not read the FRU at all.  We clamp the count and
 *     return fewer bytes, which the spec allows (the response carries the
 *     count actually returned).
 *
 *  4. SEL timestamps start near zero ("Pre-Init"); see cmd_sync_sel_time.
 *
 *  5. A user's privilege limit is not enforced at RMCP+ session open (see
 *     rakp1_check_priv), and DCMI needs ADMINISTRATOR where real BMCs take
 *     USER (see ipmi_payload_dcmi_priv).
 *
 * The module option string is the state directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <OpenIPMI/ipmi_auth.h>
#include <OpenIPMI/ipmi_err.h>
#include <OpenIPMI/serv.h>
#include <OpenIPMI/mcserv.h>

#define DCMI_GROUP 0xdc

static char statedir[512];
static sys_data_t *simsys;

/* ---- helpers ----------------------------------------------------------- */

static void
append_log(const char *line)
{
    char path[600];
    int fd;

    snprintf(path, sizeof(path), "%s/chassis.log", statedir);
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (fd < 0)
        return;
    /* One write() per record keeps lines whole next to the script's. */
    if (write(fd, line, strlen(line)) < 0) {
        /* nothing useful to do; the test will notice the missing record */
    }
    close(fd);
}

static unsigned int
read_power_watts(void)
{
    char path[600], buf[32];
    FILE *f;
    double w = 0;

    snprintf(path, sizeof(path), "%s/power_watts", statedir);
    f = fopen(path, "r");
    if (!f)
        return 0;
    if (fgets(buf, sizeof(buf), f))
        w = strtod(buf, NULL);
    fclose(f);
    if (w < 0)
        w = 0;
    if (w > 65535)
        w = 65535;
    return (unsigned int) (w + 0.5);
}

static void
put16(unsigned char *p, unsigned int v)
{
    p[0] = v & 0xff;
    p[1] = (v >> 8) & 0xff;
}

static void
put32(unsigned char *p, unsigned int v)
{
    put16(p, v & 0xffff);
    put16(p + 2, v >> 16);
}

static void
reply_cc(unsigned char *rdata, unsigned int *rdata_len, unsigned char cc)
{
    rdata[0] = cc;
    *rdata_len = 1;
}

/* ---- 1. DCMI ----------------------------------------------------------- */

static void
handle_dcmi(lmc_data_t *mc, msg_t *msg, unsigned char *rdata,
            unsigned int *rdata_len, void *cb_data)
{
    struct timeval tv;
    unsigned int w;

    /* msg->data[0] is the group id (0xdc); responses echo it in rdata[1]. */
    switch (msg->cmd) {
    case 0x01: /* Get DCMI Capabilities Info, parameter 1: supported caps */
        if (msg->len < 2) {
            reply_cc(rdata, rdata_len, IPMI_REQUEST_DATA_LENGTH_INVALID_CC);
            return;
        }
        if (msg->data[1] != 1) {
            reply_cc(rdata, rdata_len, IPMI_INVALID_DATA_FIELD_CC);
            return;
        }
        rdata[0] = 0;
        rdata[1] = DCMI_GROUP;
        rdata[2] = 1;    /* DCMI spec 1.5 */
        rdata[3] = 5;
        rdata[4] = 2;    /* parameter revision */
        rdata[5] = 0;    /* reserved */
        rdata[6] = 0x01; /* platform caps: power management */
        rdata[7] = 0x00; /* manageability access */
        rdata[8] = 0x00; /* enhanced power statistics */
        *rdata_len = 9;
        return;

    case 0x02: /* Get Power Reading */
        if (msg->len < 4) {
            reply_cc(rdata, rdata_len, IPMI_REQUEST_DATA_LENGTH_INVALID_CC);
            return;
        }
        if (msg->data[1] != 1) { /* only "system power statistics" mode */
            reply_cc(rdata, rdata_len, IPMI_INVALID_DATA_FIELD_CC);
            return;
        }
        w = read_power_watts();
        gettimeofday(&tv, NULL);
        rdata[0] = 0;
        rdata[1] = DCMI_GROUP;
        put16(rdata + 2, w);          /* current */
        put16(rdata + 4, w);          /* minimum over the period */
        put16(rdata + 6, w);          /* maximum */
        put16(rdata + 8, w);          /* average */
        put32(rdata + 10, (unsigned int) tv.tv_sec);
        put32(rdata + 14, 1000);      /* statistics period, ms */
        rdata[18] = 0x40;             /* power measurement active */
        *rdata_len = 19;
        return;

    default:
        reply_cc(rdata, rdata_len, IPMI_INVALID_CMD_CC);
        return;
    }
}

/* ---- 2. System boot options --------------------------------------------- */

static unsigned char bootparm0;          /* set in progress */
static unsigned char bootparm3 = 0x1f;   /* valid-bit clearing (all conditions) */
static unsigned char bootparm4[2];       /* boot info acknowledge */
static unsigned char bootparm5[5];       /* boot flags */

static const char *
bootdev_name(unsigned char sel)
{
    switch (sel) {
    case 0x0: return "none";
    case 0x1: return "pxe";
    case 0x2: return "disk";
    case 0x3: return "safe";
    case 0x4: return "diag";
    case 0x5: return "cdrom";
    case 0x6: return "bios";
    case 0x7: return "floppy";   /* remote floppy/primary removable */
    case 0x8: return "remote_cdrom";
    case 0x9: return "remote_disk";
    case 0xb: return "remote_disk2";
    case 0xf: return "floppy";
    default: return "unknown";
    }
}

static void
handle_set_boot_options(lmc_data_t *mc, msg_t *msg, unsigned char *rdata,
                        unsigned int *rdata_len, void *cb_data)
{
    unsigned char parm;
    char line[256];
    struct timeval tv;

    if (msg->len < 1) {
        reply_cc(rdata, rdata_len, IPMI_REQUEST_DATA_LENGTH_INVALID_CC);
        return;
    }
    parm = msg->data[0] & 0x7f;
    switch (parm) {
    case 0:
        if (msg->len < 2)
            goto short_msg;
        bootparm0 = msg->data[1] & 0x3;
        break;
    case 3:
        if (msg->len < 2)
            goto short_msg;
        bootparm3 = msg->data[1] & 0x1f;
        break;
    case 4:
        if (msg->len < 3)
            goto short_msg;
        /* data[1] is a write mask for data[2] */
        bootparm4[0] = msg->data[1];
        bootparm4[1] = (bootparm4[1] & ~msg->data[1]) | (msg->data[2] & msg->data[1]);
        break;
    case 5:
        if (msg->len < 6)
            goto short_msg;
        memcpy(bootparm5, msg->data + 1, 5);
        gettimeofday(&tv, NULL);
        snprintf(line, sizeof(line),
                 "{\"ts\": %ld.%06ld, \"op\": \"boot\", \"value\": \"%s\", \"valid\": %s, "
                 "\"persistent\": %s, \"efi\": %s, \"raw\": \"%02x%02x%02x%02x%02x\"}\n",
                 (long) tv.tv_sec, (long) tv.tv_usec,
                 bootdev_name((bootparm5[1] >> 2) & 0xf),
                 (bootparm5[0] & 0x80) ? "true" : "false",
                 (bootparm5[0] & 0x40) ? "true" : "false",
                 (bootparm5[0] & 0x20) ? "true" : "false",
                 bootparm5[0], bootparm5[1], bootparm5[2], bootparm5[3],
                 bootparm5[4]);
        append_log(line);
        break;
    default:
        reply_cc(rdata, rdata_len, 0x80); /* parameter not supported */
        return;
    }
    reply_cc(rdata, rdata_len, 0);
    return;

 short_msg:
    reply_cc(rdata, rdata_len, IPMI_REQUEST_DATA_LENGTH_INVALID_CC);
}

static void
handle_get_boot_options(lmc_data_t *mc, msg_t *msg, unsigned char *rdata,
                        unsigned int *rdata_len, void *cb_data)
{
    unsigned char parm;

    if (msg->len < 3) {
        reply_cc(rdata, rdata_len, IPMI_REQUEST_DATA_LENGTH_INVALID_CC);
        return;
    }
    parm = msg->data[0] & 0x7f;
    rdata[0] = 0;
    rdata[1] = 1;       /* parameter version */
    rdata[2] = parm;    /* bit 7 clear: parameter valid/unlocked */
    switch (parm) {
    case 0: rdata[3] = bootparm0; *rdata_len = 4; break;
    case 1: rdata[3] = 0; *rdata_len = 4; break;           /* service partition */
    case 2: rdata[3] = 0; *rdata_len = 4; break;           /* partition scan */
    case 3: rdata[3] = bootparm3; *rdata_len = 4; break;
    case 4: memcpy(rdata + 3, bootparm4, 2); *rdata_len = 5; break;
    case 5: memcpy(rdata + 3, bootparm5, 5); *rdata_len = 8; break;
    default:
        reply_cc(rdata, rdata_len, 0x80);
        break;
    }
}

/* ---- 3. FRU reads ------------------------------------------------------- */

/* ipmi_mc_get_fru_data{,_len} are exported by ipmi_sim but not declared. */
int ipmi_mc_get_fru_data_len(lmc_data_t *mc, unsigned char device_id,
                             unsigned int *length);
int ipmi_mc_get_fru_data(lmc_data_t *mc, unsigned char device_id,
                         unsigned int length, unsigned char *data);

static void
handle_read_fru(lmc_data_t *mc, msg_t *msg, unsigned char *rdata,
                unsigned int *rdata_len, void *cb_data)
{
    unsigned int len, offset, count, room;
    unsigned char *buf;
    int rv;

    if (msg->len < 4) {
        reply_cc(rdata, rdata_len, IPMI_REQUEST_DATA_LENGTH_INVALID_CC);
        return;
    }
    if (ipmi_mc_get_fru_data_len(mc, msg->data[0], &len)) {
        reply_cc(rdata, rdata_len, IPMI_INVALID_DATA_FIELD_CC);
        return;
    }
    offset = msg->data[1] | (msg->data[2] << 8);
    count = msg->data[3];
    if (offset >= len) {
        reply_cc(rdata, rdata_len, IPMI_PARAMETER_OUT_OF_RANGE_CC);
        return;
    }
    if (offset + count > len)
        count = len - offset;
    room = *rdata_len > 2 ? *rdata_len - 2 : 0;
    if (count > room)
        count = room;           /* short read instead of 0xC8 */

    buf = malloc(len);
    if (!buf) {
        reply_cc(rdata, rdata_len, IPMI_OUT_OF_SPACE_CC);
        return;
    }
    rv = ipmi_mc_get_fru_data(mc, msg->data[0], len, buf);
    if (rv) {
        free(buf);
        reply_cc(rdata, rdata_len, rv == EAGAIN ? IPMI_NODE_BUSY_CC : IPMI_UNKNOWN_ERR_CC);
        return;
    }
    memcpy(rdata + 2, buf + offset, count);
    free(buf);
    rdata[0] = 0;
    rdata[1] = count;
    *rdata_len = 2 + count;
}

/* ---- 4. SEL clock ------------------------------------------------------- */

/*
 * Stock ipmi_sim stamps SEL entries with its own clock that starts near zero
 * (ipmitool shows "Pre-Init" times) until someone sends Set SEL Time.  The
 * emu command "simext_sync_sel_time <mc>" (run from our emu file right after
 * mc_enable) sends that command internally with the wall-clock time, like a
 * BMC with a battery-backed RTC.
 */
void ipmi_emu_handle_msg(emu_data_t *emu, lmc_data_t *srcmc, msg_t *omsg,
                         unsigned char *ordata, unsigned int *ordata_len);

static int
cmd_sync_sel_time(emu_out_t *out, emu_data_t *emu, lmc_data_t *mc, char **toks)
{
    msg_t msg;
    unsigned char data[4], rdata[IPMI_SIM_MAX_MSG_LENGTH];
    unsigned int rlen = sizeof(rdata);
    struct timeval tv;

    gettimeofday(&tv, NULL);
    put32(data, (unsigned int) tv.tv_sec);
    memset(&msg, 0, sizeof(msg));
    msg.netfn = 0x0a;
    msg.cmd = 0x49;     /* Set SEL Time */
    msg.data = data;
    msg.len = 4;
    ipmi_emu_handle_msg(emu, mc, &msg, rdata, &rlen);
    if (rlen < 1 || rdata[0] != 0) {
        out->eprintf(out, "**Set SEL Time failed: 0x%02x\n", rlen ? rdata[0] : 0xff);
        return EINVAL;
    }
    return 0;
}

/* ---- 5. User privilege limit on RMCP+ session open ---------------------- */

/*
 * ipmi_sim 2.0.33 ignores a user's maximum privilege when an RMCP+ session
 * opens: the "operator" user can ask RAKP-1 for ADMINISTRATOR and get it
 * (then e.g. set passwords).  Real BMCs refuse the role.  We wrap the RAKP-1
 * payload handler: when the requested role is above the user's limit, the
 * user name is replaced by one that cannot exist, so ipmi_sim answers RAKP-2
 * with status 0x0d "unauthorized name".  pyghmi then retries at OPERATOR by
 * itself (session.py: autopriv on 0x09/0x0d); ipmitool needs -L OPERATOR.
 * Role 0 ("highest available") is left alone.
 */
extern ipmi_payload_handler_cb payload_handlers[64];
static ipmi_payload_handler_cb orig_rakp1;

static void
rakp1_check_priv(lanserv_data_t *lan, msg_t *msg)
{
    unsigned char priv, name_len;
    unsigned int i;

    if (msg->sid == 0 && msg->len >= 28 && lan->users) {
        priv = msg->data[24] & 0xf;
        name_len = msg->data[27];
        if (priv && name_len <= 16 && 28u + name_len <= msg->len) {
            for (i = 1; i <= MAX_USERS; i++) {
                user_t *u = &lan->users[i];
                if (!u->valid || strnlen((char *) u->username, 16) != name_len
                    || memcmp(u->username, msg->data + 28, name_len) != 0)
                    continue;
                if (priv > u->privilege) {
                    msg->data[27] = 1;
                    msg->data[28] = 0x01;   /* no user is called "\x01" */
                }
                break;
            }
        }
    }
    orig_rakp1(lan, msg);
}

/*
 * Same spirit: ipmi_sim's privilege table has no entry for the group
 * extension netfn, so DCMI needs ADMINISTRATOR; real BMCs (and the DCMI spec)
 * allow Get DCMI Capabilities / Get Power Reading at USER.  For just those
 * two requests on an RMCP+ session we lift the session privilege around the
 * stock IPMI payload handler (messages reach it decrypted and verified).
 */
static ipmi_payload_handler_cb orig_ipmi_payload;

static void
ipmi_payload_dcmi_priv(lanserv_data_t *lan, msg_t *msg)
{
    session_t *ses = NULL;
    unsigned char saved = 0;
    unsigned int i;

    /* rsAddr, netfn/lun, chk, rqAddr, rqSeq, cmd, data... */
    if (msg->sid != 0 && msg->len >= 7 && (msg->data[1] >> 2) == 0x2c
        && msg->data[6] == DCMI_GROUP && (msg->data[5] == 0x01 || msg->data[5] == 0x02)) {
        for (i = 1; i <= MAX_SESSIONS; i++) {
            if (lan->sessions[i].active && lan->sessions[i].sid == msg->sid) {
                ses = &lan->sessions[i];
                break;
            }
        }
        if (ses && ses->priv >= IPMI_PRIVILEGE_USER && ses->priv < IPMI_PRIVILEGE_ADMIN) {
            saved = ses->priv;
            ses->priv = IPMI_PRIVILEGE_ADMIN;
        } else {
            ses = NULL;
        }
    }
    orig_ipmi_payload(lan, msg);
    if (ses && ses->active)
        ses->priv = saved;
}

/* ---- module entry points ------------------------------------------------ */

int
ipmi_sim_module_print_version(sys_data_t *sys, char *options)
{
    printf("hostagent simext 1.0\n");
    return 0;
}

int
ipmi_sim_module_init(sys_data_t *sys, char *options)
{
    int rv;

    simsys = sys;
    if (!options || !*options) {
        fprintf(stderr, "simext: the module option must be the state dir\n");
        return EINVAL;
    }
    snprintf(statedir, sizeof(statedir), "%s", options);

    ipmi_emu_register_group_extension_handler(DCMI_GROUP, handle_dcmi, NULL);
    rv = ipmi_emu_register_cmd_handler(0x00, 0x08, handle_set_boot_options, NULL);
    if (!rv)
        rv = ipmi_emu_register_cmd_handler(0x00, 0x09, handle_get_boot_options, NULL);
    if (!rv)
        rv = ipmi_emu_register_cmd_handler(0x0a, 0x11, handle_read_fru, NULL);
    if (!rv)
        rv = ipmi_emu_add_cmd("simext_sync_sel_time", MC, cmd_sync_sel_time);
    if (!rv && payload_handlers[0x12] && payload_handlers[0x12] != rakp1_check_priv) {
        orig_rakp1 = payload_handlers[0x12];
        payload_handlers[0x12] = rakp1_check_priv;
    }
    if (!rv && payload_handlers[0] && payload_handlers[0] != ipmi_payload_dcmi_priv) {
        orig_ipmi_payload = payload_handlers[0];
        payload_handlers[0] = ipmi_payload_dcmi_priv;
    }
    if (rv)
        fprintf(stderr, "simext: registering handlers failed: %d\n", rv);
    return rv;
}
