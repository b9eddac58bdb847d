"""The 520 usage replies Asterisk 22 sends for a command with wrong arguments.

res_agi.c answers ``520-Invalid command syntax.  Proper usage follows:``, the
command's usage, then ``520 End of proper usage.``. The usage is the
command's XML ``<description>`` as ``ast_xmldoc_build_description`` renders
it: one line per ``<para>``, inline tags kept literally, each newline and the
tabs after it folded to one space. The WAIT FOR DIGIT text matches the
transcript byte for byte; the others are rendered the same way from the
Asterisk 22 sources.
"""

from __future__ import annotations

__all__ = ["USAGE", "usage_reply"]

USAGE: dict[str, str] = {
    "ANSWER": "Answers channel if not already in answer state. Returns <literal>-1</literal> on channel failure, or <literal>0</literal> if successful.",
    "HANGUP": "Hangs up the specified channel. If no channel name is given, hangs up the current channel",
    "STREAM FILE": "Send the given file, allowing playback to be interrupted by the given digits, if any. Returns <literal>0</literal> if playback completes without a digit being pressed, or the ASCII numerical value of the digit if one was pressed, or <literal>-1</literal> on error or if the channel was disconnected. If musiconhold is playing before calling stream file it will be automatically stopped and will not be restarted after completion.\nIt sets the following channel variables upon completion:\n<variable>PLAYBACKSTATUS</variable>: The status of the playback attempt as a text string.\n    <value>SUCCESS</value>\n    <value>FAILED</value>",
    "CONTROL STREAM FILE": "Send the given file, allowing playback to be controlled by the given digits, if any. Use double quotes for the digits if you wish none to be permitted. If offsetms is provided then the audio will seek to offsetms before play starts. Returns <literal>0</literal> if playback completes without a digit being pressed, or the ASCII numerical value of the digit if one was pressed, or <literal>-1</literal> on error or if the channel was disconnected. Returns the position where playback was terminated as endpos.\nIt sets the following channel variables upon completion:\n<variable>CPLAYBACKSTATUS</variable>: Contains the status of the attempt as a text string\n    <value>SUCCESS</value>\n    <value>USERSTOPPED</value>\n    <value>REMOTESTOPPED</value>\n    <value>ERROR</value>\n<variable>CPLAYBACKOFFSET</variable>: Contains the offset in ms into the file where playback was at when it stopped. <literal>-1</literal> is end of file.\n<variable>CPLAYBACKSTOPKEY</variable>: If the playback is stopped by the user this variable contains the key that was pressed.",
    "GET DATA": "Stream the given <replaceable>file</replaceable>, and receive DTMF data.\nReturns the digits received from the channel at the other end.",
    "GET OPTION": "Behaves similar to STREAM FILE but used with a timeout option.",
    "WAIT FOR DIGIT": "Waits up to <replaceable>timeout</replaceable> milliseconds for channel to receive a DTMF digit. Returns <literal>-1</literal> on channel failure, <literal>0</literal> if no digit is received in the timeout, or the numerical value of the ascii of the digit if one is received. Use <literal>-1</literal> for the <replaceable>timeout</replaceable> value if you desire the call to block indefinitely.",
    "SAY DIGITS": "Say a given digit string, returning early if any of the given DTMF digits are received on the channel. Returns <literal>0</literal> if playback completes without a digit being pressed, or the ASCII numerical value of the digit if one was pressed or <literal>-1</literal> on error/hangup.",
    "SAY NUMBER": "Say a given number, returning early if any of the given DTMF digits are received on the channel.  Returns <literal>0</literal> if playback completes without a digit being pressed, or the ASCII numerical value of the digit if one was pressed or <literal>-1</literal> on error/hangup.",
    "SAY ALPHA": "Say a given character string, returning early if any of the given DTMF digits are received on the channel. Returns <literal>0</literal> if playback completes without a digit being pressed, or the ASCII numerical value of the digit if one was pressed or <literal>-1</literal> on error/hangup.",
    "RECORD FILE": "Record to a file until a given dtmf digit in the sequence is received. Returns <literal>-1</literal> on hangup or error.  The format will specify what kind of file will be recorded. The <replaceable>timeout</replaceable> is the maximum record time in milliseconds, or <literal>-1</literal> for no <replaceable>timeout</replaceable>. <replaceable>offset samples</replaceable> is optional, and, if provided, will seek to the offset without exceeding the end of the file. <replaceable>beep</replaceable> can take any value, and causes Asterisk to play a beep to the channel that is about to be recorded. <replaceable>silence</replaceable> is the number of seconds of silence allowed before the function returns despite the lack of dtmf digits or reaching <replaceable>timeout</replaceable>. <replaceable>silence</replaceable> value must be preceded by <literal>s=</literal> and is also optional.",
    "EXEC": "Executes <replaceable>application</replaceable> with given <replaceable>options</replaceable>.\nReturns whatever the <replaceable>application</replaceable> returns, or <literal>-2</literal> on failure to find <replaceable>application</replaceable>.\n<note>NOTE:</note> exec does not evaluate dialplan functions and variables unless it is explicitly enabled by setting the <variable>AGIEXECFULL</variable> variable to <literal>yes</literal>.",
    "SET VARIABLE": "Sets a variable to the current channel.",
    "GET VARIABLE": "Returns <literal>0</literal> if <replaceable>variablename</replaceable> is not set. Returns <literal>1</literal> if <replaceable>variablename</replaceable> is set and returns the variable in parentheses.\nExample return code: 200 result=1 (testvariable)",
    "GET FULL VARIABLE": "Evaluates the given <replaceable>expression</replaceable> against the channel specified by <replaceable>channelname</replaceable>, or the current channel if <replaceable>channelname</replaceable> is not provided.\nUnlike GET VARIABLE, the <replaceable>expression</replaceable> is processed in a manner similar to dialplan evaluation, allowing complex and built-in variables to be accessed, e.g. <literal>The time is ${EPOCH}</literal>\nReturns <literal>0</literal> if no channel matching <replaceable>channelname</replaceable> exists, <literal>1</literal> otherwise.\nExample return code: 200 result=1 (The time is 1578493800)",
    "CHANNEL STATUS": "Returns the status of the specified <replaceable>channelname</replaceable>. If no channel name is given then returns the status of the current channel.\nReturn values:\n    <enum>0</enum> - Channel is down and available.\n    <enum>1</enum> - Channel is down, but reserved.\n    <enum>2</enum> - Channel is off hook.\n    <enum>3</enum> - Digits (or equivalent) have been dialed.\n    <enum>4</enum> - Line is ringing.\n    <enum>5</enum> - Remote end is ringing.\n    <enum>6</enum> - Line is up.\n    <enum>7</enum> - Line is busy.",
    "VERBOSE": "Sends <replaceable>message</replaceable> to the console via verbose message system. <replaceable>level</replaceable> is the verbose level (1-4). Always returns <literal>1</literal>",
    "SET MUSIC": "Enables/Disables the music on hold generator. If <replaceable>class</replaceable> is not specified, then the <literal>default</literal> music on hold class will be used. This generator will be stopped automatically when playing a file.\nAlways returns <literal>0</literal>.",
    "NOOP": "Does nothing.",
    "SET CONTEXT": "Sets the context for continuation upon exiting the application.",
    "SET EXTENSION": "Changes the extension for continuation upon exiting the application.",
    "SET PRIORITY": "Changes the priority for continuation upon exiting the application. The priority must be a valid priority or label.",
    "SET CALLERID": "Changes the callerid of the current channel.",
    "DATABASE GET": "Retrieves an entry in the Asterisk database for a given <replaceable>family</replaceable> and <replaceable>key</replaceable>.\nReturns <literal>0</literal> if <replaceable>key</replaceable> is not set. Returns <literal>1</literal> if <replaceable>key</replaceable> is set and returns the variable in parenthesis.\nExample return code: 200 result=1 (testvariable)",
    "DATABASE PUT": "Adds or updates an entry in the Asterisk database for a given <replaceable>family</replaceable>, <replaceable>key</replaceable>, and <replaceable>value</replaceable>.\nReturns <literal>1</literal> if successful, <literal>0</literal> otherwise.",
    "DATABASE DEL": "Deletes an entry in the Asterisk database for a given <replaceable>family</replaceable> and <replaceable>key</replaceable>.\nReturns <literal>1</literal> if successful, <literal>0</literal> otherwise.",
}


def usage_reply(command: str) -> bytes:
    """The full 520 reply for ``command`` (the short form when no usage is known)."""
    text = USAGE.get(command)
    if text is None:
        return b"520 Invalid command syntax.  Proper usage not available.\n"
    return (
        f"520-Invalid command syntax.  Proper usage follows:\n{text}\n520 End of proper usage.\n"
    ).encode()
