"""The module-table generator, run on a small git tree laid out as Asterisk's is."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ivr.deploy.asterisk_modules_gen import main, strip_comments

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

FILES = {
    "main/Makefile": "MOD_SRC:=cdr.c config.c\n",
    "main/config.c": (
        '#undef AST_MODULE\n#define AST_MODULE "extconfig"\n'
        'AST_MODULE_INFO(ASTERISK_GPL_KEY, AST_MODFLAG_LOAD_ORDER, "Configuration",\n'
        "\t.load_pri = 0,\n);\n"
    ),
    "main/cdr.c": (
        'AST_MODULE_INFO(ASTERISK_GPL_KEY, AST_MODFLAG_LOAD_ORDER, "CDR Engine",\n'
        '\t.requires = "extconfig",\n);\n'
    ),
    "main/pbx_builtins.c": (
        "static struct pbx_builtin { char name[80]; } builtins[] = {\n"
        '\t{ "Answer", pbx_builtin_answer },\n\t{ "Goto", pbx_builtin_goto },\n};\n'
        "int load(void) { for (x = 0; x < 2; x++) "
        "ast_register_application2(builtins[x].name, builtins[x].execute, NULL, NULL, NULL); }\n"
    ),
    "res/res_agi.c": (
        'static char *app = "AGI";\nstatic char *eapp = "EAGI";\n'
        '/* ast_register_application_xml("Ghost", x); */\n'
        '// ast_register_application_xml("Ghost2", x);\n'
        "int load(void) { ast_register_application_xml(app, agi_exec);\n"
        "ast_register_application_xml(eapp, eagi_exec); }\n"
        "AST_MODULE_INFO(ASTERISK_GPL_KEY, AST_MODFLAG_GLOBAL_SYMBOLS,"
        ' "Asterisk Gateway Interface (AGI)",\n'
        '\t.load_pri = AST_MODPRI_APP_DEPEND,\n\t.requires = "res_speech", /* needs it */\n'
        '#ifdef HAVE_PJPROJECT\n\t.optional_modules = "res_pjproject",\n#endif\n);\n'
    ),
    "res/res_speech.c": 'AST_MODULE_INFO_STANDARD(ASTERISK_GPL_KEY, "Generic Speech, API");\n',
    "res/res_parking.c": (
        '#include "asterisk/parking.h"\n'
        "int load(void) { ast_register_application_xml(PARK_APPLICATION, park_exec); }\n"
        'AST_MODULE_INFO_STANDARD(ASTERISK_GPL_KEY, "Call Parking");\n'
    ),
    "include/asterisk/parking.h": '#define PARK_APPLICATION "Park"\n',
    "funcs/func_channel.c": (
        "static struct ast_custom_function channel_function = {\n"
        '\t.name = "CHANNEL",\n\t.read = func_channel_read,\n};\n'
        "int load(void) { ast_custom_function_register(&channel_function); }\n"
        'AST_MODULE_INFO_STANDARD(ASTERISK_GPL_KEY, "Channel functions");\n'
    ),
    "apps/Makefile": "$(call MOD_ADD_C,app_confbridge,$(wildcard confbridge/*.c))\n",
    "apps/app_confbridge.c": (
        'AST_MODULE_INFO_STANDARD_EXTENDED(ASTERISK_GPL_KEY, "Conference Bridge");\n'
    ),
    "apps/confbridge/conf_config_parser.c": (
        'static const char app_name[] = "ConfBridge";\n'
        "int x(void) { ast_register_application_xml(app_name, confbridge_exec); }\n"
    ),
    "apps/app_voicemail.c": (
        '#ifdef ODBC_STORAGE\nstatic char *tdesc = "with ODBC";\n#else\n'
        'static char *tdesc = "Comedian Mail";\n#endif\n'
        'static char *voicemail_app = "VoiceMail";\n'
        "int load(void) { ast_register_application_xml(voicemail_app, vm_exec); }\n"
        "AST_MODULE_INFO(ASTERISK_GPL_KEY, AST_MODFLAG_DEFAULT, tdesc,\n"
        '\t.optional_modules = "res_adsi,res_smdi",\n);\n'
    ),
    "formats/format_wav.c": (
        'static struct ast_format_def wav_f = {\n\t.name = "wav",\n\t.exts = "wav|wav16",\n};\n'
        'AST_MODULE_INFO_STANDARD(ASTERISK_GPL_KEY, "WAV");\n'
    ),
    "codecs/codec_ulaw.c": (
        "static struct ast_translator ulawtolin = {\n"
        '\t.name = "ulawtolin",\n\t.src_codec = {\n\t\t.name = "ulaw",\n\t},\n'
        '\t.dst_codec = {\n\t\t.name = "slin",\n\t},\n};\n'
        'AST_MODULE_INFO_STANDARD(ASTERISK_GPL_KEY, "mu-Law");\n'
    ),
    "channels/chan_pjsip.c": (
        'static const char channel_type[] = "PJSIP";\n'
        "struct ast_channel_tech chan_pjsip_tech = {\n\t.type = channel_type,\n};\n"
        'int load(void) { ast_sorcery_object_register(sorcery, "endpoint", a, NULL, b);\n'
        'ast_config_load("pjsip.conf,criteria=type=endpoint"); }\n'
        'AST_MODULE_INFO(ASTERISK_GPL_KEY, AST_MODFLAG_LOAD_ORDER, "PJSIP Channel Driver",\n'
        '\t.requires = "res_pjsip,"\n\t\t"res_pjsip_session",\n);\n'
    ),
    "channels/sig_helper.c": "int helper(void) { return 0; }\n",
    # AMI: actions registered by name, a #define or the core's; a topic of main/ whose
    # message type has a .to_ami, forwarded to the manager's topic by a module.
    "main/manager.c": (
        "int ast_manager_register2(const char *action, int auth, void *f) { return 0; }\n"
        "static void init(void) {\n"
        '\tast_manager_register_xml_core("Ping", 0, action_ping);\n'
        '\tast_manager_register_xml_core("Originate", EVENT_FLAG_ORIGINATE, action_originate);\n'
        '\tmanager_event(EVENT_FLAG_CALL, ok ? "OriginateResponse" : "OriginateFailed", "");\n'
        '\tast_manager_publish_event("FullyBooted", EVENT_FLAG_SYSTEM, NULL);\n}\n'
    ),
    "main/devicestate.c": (
        "static struct ast_manager_event_blob *devstate_to_ami(struct stasis_message *msg);\n"
        "STASIS_MESSAGE_TYPE_DEFN(ast_device_state_message_type,\n"
        "\t.to_ami = devstate_to_ami,\n);\n"
        "struct stasis_topic *ast_device_state_topic_all(void)\n{\n\treturn topic;\n}\n"
        "static struct ast_manager_event_blob *devstate_to_ami(struct stasis_message *msg)\n{\n"
        '\treturn ast_manager_event_blob_create(EVENT_FLAG_CALL, "DeviceStateChange",\n'
        '\t\t"Device: %s\\r\\n", d);\n}\n'
    ),
    "main/manager_doc.xml": (
        '<docs>\n\t<managerEvent language="en_US" name="CoreShowChannel">\n'
        "\t</managerEvent>\n</docs>\n"
    ),
    "res/Makefile": "$(call MOD_ADD_C,res_pjsip,$(wildcard res_pjsip/*.c))\n",
    "res/res_pjsip.c": 'AST_MODULE_INFO_STANDARD(ASTERISK_GPL_KEY, "Basic SIP resource");\n',
    "res/res_pjsip/location.c": (
        'int x(void) { ast_manager_register_xml("PJSIPShowAors", EVENT_FLAG_SYSTEM, f); }\n'
    ),
    "res/res_pjsip/pjsip_manager.xml": (
        '<docs>\n\t<managerEvent language="en_US" name="AorList">\n\t</managerEvent>\n</docs>\n'
    ),
    "res/res_manager_devicestate.c": (
        '/*** DOCUMENTATION\n\t<manager name="DeviceStateList" language="en_US">\n'
        "\t\t<xi:include xpointer=\"xpointer(/docs/managerEvent[@name='DeviceStateChange'])\" />\n"
        '\t\t<managerEvent name="DeviceStateListComplete" language="en_US">\n'
        "\t\t</managerEvent>\n\t</manager>\n ***/\n"
        "static int load_module(void)\n{\n\tstruct stasis_topic *manager_topic;\n"
        "\tmanager_topic = ast_manager_get_topic();\n"
        "\tfwd = stasis_forward_all(ast_device_state_topic_all(), manager_topic);\n"
        '\tif (ast_manager_register_xml("DeviceStateList", EVENT_FLAG_CALL | EVENT_FLAG_REPORTING,'
        "\n\t\taction_devicestatelist)) {\n\t\treturn -1;\n\t}\n\treturn 0;\n}\n"
        "AST_MODULE_INFO(ASTERISK_GPL_KEY, AST_MODFLAG_LOAD_ORDER,"
        ' "Manager Device State Topic Forwarder",\n\t.load = load_module,\n);\n'
    ),
    "res/res_pjsip_pubsub.c": (
        '#define AMI_SHOW_SUBSCRIPTIONS_INBOUND "PJSIPShowSubscriptionsInbound"\n'
        "int load(void) { ast_manager_register_xml(AMI_SHOW_SUBSCRIPTIONS_INBOUND,\n"
        "\tEVENT_FLAG_SYSTEM, ami_show_subscriptions_inbound); }\n"
        'AST_MODULE_INFO_STANDARD(ASTERISK_GPL_KEY, "PJSIP event resource");\n'
    ),
    "tests/test_x.c": 'AST_MODULE_INFO_STANDARD(ASTERISK_GPL_KEY, "Test");\n',
}


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    repo = tmp_path_factory.mktemp("asterisk")
    for name, text in FILES.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (repo / "apps" / "app_voicemail_imap.c").symlink_to("app_voicemail.c")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "-C", str(repo)]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "x"], ["tag", "22.9.0"]):
        subprocess.run([*git, *args], check=True, capture_output=True)
    out = repo / "table.json"
    assert main(["--git-dir", str(repo / ".git"), "--out", str(out)]) == 0
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def test_origin_is_the_tag_and_its_commit(table: dict[str, Any]) -> None:
    assert table["asterisk"]["ref"] == "22.9.0"
    assert len(table["asterisk"]["commit"]) == 40


def test_requires_and_optional_with_their_conditions(table: dict[str, Any]) -> None:
    agi = table["modules"]["res_agi"]
    assert agi["requires"] == ["res_speech"]
    assert agi["optional"] == ["res_pjproject"]
    assert agi["conditions"] == {"res_pjproject": "HAVE_PJPROJECT"}
    assert agi["load_pri"] == "AST_MODPRI_APP_DEPEND"
    assert table["modules"]["chan_pjsip"]["requires"] == ["res_pjsip", "res_pjsip_session"]


def test_applications_resolved_and_comments_ignored(table: dict[str, Any]) -> None:
    assert table["modules"]["res_agi"]["applications"] == ["AGI", "EAGI"]
    assert table["modules"]["res_parking"]["applications"] == ["Park"]  # from a header
    assert table["modules"]["app_confbridge"]["applications"] == ["ConfBridge"]  # MOD_ADD_C
    assert table["core"]["applications"] == ["Answer", "Goto"]
    assert table["unresolved"] == []


def test_functions_formats_translators_channels_and_files(table: dict[str, Any]) -> None:
    mods = table["modules"]
    assert mods["func_channel"]["functions"] == ["CHANNEL"]
    assert mods["format_wav"]["file_extensions"] == ["wav", "wav16"]
    assert mods["codec_ulaw"]["translators"] == [["ulaw", "slin"]]
    assert mods["chan_pjsip"]["channel_types"] == ["PJSIP"]
    assert mods["chan_pjsip"]["sorcery_types"] == ["endpoint"]
    assert mods["chan_pjsip"]["config_files"] == ["pjsip.conf"]


def test_builtins_variants_and_what_is_not_a_module(table: dict[str, Any]) -> None:
    mods = table["modules"]
    assert mods["extconfig"]["builtin"] is True  # main/config.c's own AST_MODULE
    assert mods["cdr"] == {
        "builtin": True,
        "description": "CDR Engine",
        "requires": ["extconfig"],
        "source": "main/cdr.c",
    }
    assert mods["app_voicemail_imap"]["variant_of"] == "app_voicemail"
    assert mods["app_voicemail_imap"]["applications"] == ["VoiceMail"]
    assert "description" not in mods["app_voicemail"]  # differs by build: left out
    assert mods["res_speech"]["description"] == "Generic Speech, API"
    assert mods["app_confbridge"]["support"] == "extended"
    assert "sig_helper" not in mods and "test_x" not in mods


def test_ami_actions_events_and_forwarded_topics(table: dict[str, Any]) -> None:
    """Actions by literal or #define; the core's (main/, not built in) under core;
    events raised by name; a topic of main/ forwarded to the manager by a module."""
    mods = table["modules"]
    assert table["core"]["ami_actions"] == ["Originate", "Ping"]
    assert table["core"]["ami_events"] == [
        "CoreShowChannel",  # documented in main/manager_doc.xml
        "DeviceStateChange",
        "FullyBooted",
        "OriginateFailed",
        "OriginateResponse",
    ]
    devstate = mods["res_manager_devicestate"]
    assert devstate["ami_actions"] == ["DeviceStateList"]
    assert devstate["ami_forwards"] == ["DeviceStateChange"]
    assert devstate["ami_events"] == ["DeviceStateListComplete"]  # the xpointer is no event
    assert mods["res_pjsip"]["ami_actions"] == ["PJSIPShowAors"]  # MOD_ADD_C source
    assert mods["res_pjsip"]["ami_events"] == ["AorList"]  # res/res_pjsip/*.xml
    assert mods["res_pjsip_pubsub"]["ami_actions"] == ["PJSIPShowSubscriptionsInbound"]
    assert "ami_actions" not in mods["res_agi"] and "ami_forwards" not in mods["res_agi"]
    assert table["unresolved"] == []  # the definition of ast_manager_register2 is no action


def test_strip_comments_keeps_strings() -> None:
    text = 'a = "/* not */"; /* gone */ b = "//x"; // gone\nc'
    assert strip_comments(text) == 'a = "/* not */";   b = "//x"; \nc'


def test_a_wrong_git_dir_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="is --git-dir a clone of asterisk/asterisk"):
        main(["--git-dir", str(tmp_path), "--out", str(tmp_path / "t.json")])
