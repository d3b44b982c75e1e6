"""The questions `kcc dev --demo-traffic` files, with what the department answers.

Written for the demo organisation (Gemeente Voorbeeldstad): each question is one a KCC agent
could really get, and `department` is where the routing rules send it (a test checks that, so a
rule change that moves one shows up). A question with `ask` is ambiguous on purpose: the
department first asks the agent `ask`, the agent replies `clarify`, then the department answers.
No question carries a citizen service number or a name.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Script:
    question: str
    department: str
    answer: str
    category: str | None = None
    priority: str = "normal"
    ask: str | None = None
    clarify: str | None = None


SCRIPTS: tuple[Script, ...] = (
    Script(
        "Paspoort is verlopen en de inwoner vertrekt over tien dagen op vakantie. "
        "Kan er nog een spoedaanvraag gedaan worden?",
        "burgerzaken",
        "Ja, een spoedaanvraag kan tot drie werkdagen voor vertrek. Laat de inwoner online "
        "een afspraak maken en een pasfoto meenemen; de spoedtoeslag staat op de website.",
        category="documenten",
        priority="high",
    ),
    Script(
        "Inwoner is verhuisd binnen de gemeente maar staat na drie weken nog op het oude "
        "adres in de BRP. Wat moet hij doen?",
        "burgerzaken",
        "De verhuizing is nog niet verwerkt omdat de hoofdbewoner van het nieuwe adres niet "
        "heeft getekend. We sturen hem een brief; na ondertekening is het binnen twee dagen "
        "aangepast.",
        category="verhuizing-brp",
        ask="Woont de inwoner in bij iemand anders of huurt hij zelfstandig?",
        clarify="Hij woont in bij zijn zus, zij is de hoofdbewoner.",
    ),
    Script(
        "De WOZ-waarde van de woning is volgens de inwoner veel te hoog. Hoe kan zij "
        "bezwaar maken en tot wanneer?",
        "belastingen",
        "Bezwaar kan tot zes weken na de dagtekening van de aanslag, online met DigiD of per "
        "brief. Het taxatieverslag kan ze vooraf gratis opvragen via het belastingportaal.",
    ),
    Script(
        "Inwoner heeft een aanslag afvalstoffenheffing gekregen voor een woning waar hij al "
        "sinds maart niet meer woont. Krijgt hij geld terug?",
        "belastingen",
        "Ja, de heffing wordt per maand verminderd vanaf de maand na vertrek. Wij passen de "
        "aanslag ambtshalve aan; hij krijgt binnen vier weken een verminderingsbeschikking.",
    ),
    Script(
        "Kan een inwoner met alleen een AOW-uitkering kwijtschelding krijgen voor de "
        "gemeentelijke belastingen?",
        "belastingen",
        "Waarschijnlijk wel: met alleen AOW en weinig vermogen is de kans groot. Laat haar "
        "het kwijtscheldingsformulier invullen; wij toetsen dat automatisch bij het "
        "Inlichtingenbureau.",
        category="kwijtschelding",
        ask="Heeft de inwoner naast de AOW ook een pensioen of spaargeld?",
        clarify="Een klein pensioen van ongeveer 150 euro per maand, geen spaargeld.",
    ),
    Script(
        "Grofvuil afspraak gemaakt voor vanochtend maar de bank en het matras zijn niet "
        "opgehaald. Wat nu?",
        "afval",
        "Excuses, de wagen kwam niet toe aan de hele route. De ophaalploeg komt morgen vóór "
        "12 uur langs; de bank en het matras mogen blijven staan.",
        priority="high",
    ),
    Script(
        "De groene container is gisteren bij de hele straat niet geleegd. Moeten de bewoners "
        "hem laten staan?",
        "afval",
        "Ja, laten staan. Door een kapotte wagen is de route niet afgemaakt; we legen de "
        "containers in die straat morgen.",
        category="afval",
    ),
    Script(
        "Op het fietspad langs de Dorpsstraat ligt een stoeptegel los, er is al bijna iemand "
        "gevallen.",
        "openbare-ruimte",
        "De melding staat bij de buitendienst; de tegel wordt vandaag nog vastgezet en tot die "
        "tijd afgezet.",
        category="melding-openbare-ruimte",
        priority="urgent",
    ),
    Script(
        "Een lantaarnpaal in het park doet het al een week niet meer, het is er 's avonds "
        "erg donker.",
        "openbare-ruimte",
        "Dank voor de melding. De storing is doorgegeven aan de netbeheerder; reparatie binnen "
        "vijf werkdagen.",
        category="melding-openbare-ruimte",
        ask="Staat er een nummer op de paal? Dan vinden we hem sneller.",
        clarify="Volgens de inwoner staat er 14-027 op een plaatje.",
    ),
    Script(
        "Een inwoner wil een dakkapel plaatsen aan de voorkant van zijn huis. Heeft hij "
        "daarvoor een vergunning nodig?",
        "vergunningen",
        "Aan de voorkant is bijna altijd een omgevingsvergunning nodig. Laat hem eerst de "
        "vergunningcheck in het Omgevingsloket doen en daarna de aanvraag indienen.",
        category="bouwen-verbouwen",
    ),
    Script(
        "De buurtvereniging wil in juni een straatfeest houden met een springkussen. Wat "
        "moeten ze regelen?",
        "vergunningen",
        "Een klein evenement zonder muziek na 23 uur kan met een melding, uiterlijk drie weken "
        "vooraf. Voor het afsluiten van de straat regelen wij de verkeersmaatregelen.",
        category="evenementen-horeca",
        ask="Wordt de straat afgesloten voor verkeer, en komt er versterkte muziek?",
        clarify="Ja, de straat gaat dicht van 14 tot 22 uur; geen versterkte muziek.",
    ),
    Script(
        "Inwoner heeft een nieuwe auto en wil het kenteken op zijn parkeervergunning laten "
        "wijzigen. Kan dat online?",
        "parkeren",
        "Ja, in het parkeerportaal onder Mijn vergunningen. De wijziging geldt direct; het "
        "oude kenteken vervalt op hetzelfde moment.",
        category="parkeren",
    ),
    Script(
        "Een inwoner heeft een huurwoning en wil weten hoe ze zich inschrijft als "
        "woningzoekende en hoe lang de wachttijd is.",
        "wonen",
        "Inschrijven kan via het regionale woonportaal; de gemiddelde wachttijd voor een "
        "sociale huurwoning is nu ruim acht jaar. Urgentie is alleen in noodsituaties mogelijk.",
    ),
    Script(
        "Een marktkoopman vraagt of er op de weekmarkt op zaterdag nog een standplaats vrij "
        "is voor kaas.",
        "ondernemers",
        "Er is een wachtlijst per branche; voor kaas is er op dit moment plek voor een "
        "dagplaats. De marktmeester neemt contact op voor een proefdag.",
        category="ondernemen",
    ),
    Script(
        "Inwoner van 82 jaar kan niet meer zelf douchen en vraagt hulp bij het aanpassen van "
        "de badkamer.",
        "sociaal-domein",
        "Een Wmo-consulent belt de inwoner binnen vijf werkdagen voor een keukentafelgesprek "
        "over een woningaanpassing of hulp bij het douchen.",
        category="zorg-wmo",
        ask="Woont de inwoner in een huurwoning of een koopwoning?",
        clarify="Een huurwoning van de woningcorporatie.",
    ),
    Script(
        "Auto beschadigd door een diepe kuil in de weg bij de rotonde. Inwoner wil de schade "
        "verhalen op de gemeente.",
        "juridische-zaken",
        "De inwoner kan de gemeente schriftelijk aansprakelijk stellen met foto's, de plek en "
        "een schadeopgave. Wij beoordelen dat binnen zes weken.",
        category="schade-aansprakelijkheid",
    ),
    Script(
        "Iemand vraagt waar hij het beste terecht kan met een algemene vraag over de "
        "openingstijden van het gemeentehuis rond de feestdagen.",
        "kcc-triage",
        "Het gemeentehuis is dicht op 24 en van 28 tot en met 31 december; de actuele tijden "
        "staan op de website onder Contact.",
    ),
)

# What a department writes when a question is not in the script (after a change above, or one
# filed through the API by hand and claimed by a demo staff member).
GENERIC_ANSWER = (
    "Dank voor de vraag. We hebben het nagekeken: de inwoner kan het beste de informatie op de "
    "website volgen; lukt dat niet, dan belt de afdeling terug."
)
GENERIC_CLARIFICATION = "De inwoner heeft verder geen aanvullende informatie."
RATING_COMMENTS = (
    "Duidelijk antwoord, inwoner direct geholpen.",
    "Snel geregeld, dank!",
    "Antwoord klopte, maar het duurde even.",
    "Helder, dit kan ik de volgende keer zelf uitleggen.",
)
